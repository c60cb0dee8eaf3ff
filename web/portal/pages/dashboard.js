// Queue counts, every active batch with a live bar (one customer stream for all of them),
// and the batches that finished last.
import { api } from "../api.js";
import { el, errorBox, fmtDate, progressBar, openStream, announce, timeLeft, batchState, head } from "../ui.js";

function batchRow(c, b) {
  const bar = progressBar(b);
  const left = el("span", { class: "muted eta" }, timeLeft(b));
  const row = el("li", { class: "batch-row" },
    el("a", { href: `/portal/customers/${c}/batches/${b.id}` }, `Batch ${b.id}`),
    bar, left);
  row.update = (nb) => { bar.update(nb); left.textContent = timeLeft(nb); row.dataset.done = nb.finished ? "true" : "false"; };
  row.update(b);
  return row;
}

export async function render(main, { c }) {
  const counts = el("dl", { class: "stats" });
  const active = el("ul", { class: "batch-list", id: "active-batches" });
  const recent = el("tbody");
  main.append(
    el("h1", {}, "Dashboard"),
    el("section", { "aria-labelledby": "q-h" }, el("h2", { id: "q-h" }, "Queue"), counts),
    el("section", { "aria-labelledby": "a-h" }, el("h2", { id: "a-h" }, "Active batches"), active),
    el("section", { "aria-labelledby": "r-h" }, el("h2", { id: "r-h" }, "Recent batches"),
       el("div", { class: "table-wrap" }, el("table", {},
         head(["Batch", "State", "Images", "Failed", "Finished"]),
         recent))));

  const rows = new Map();
  const addRow = (b) => {
    const r = batchRow(c, b);
    rows.set(b.id, r);
    const empty = active.querySelector(".empty");
    if (empty) empty.remove();
    active.append(r);
    return r;
  };
  const emptyActive = () => {
    if (rows.size === 0 && !active.querySelector(".empty"))
      active.append(el("li", { class: "empty" }, "No batch is running. ",
        el("a", { href: `/portal/customers/${c}/upload` }, "Upload images"), " to start one."));
  };
  const stat = (name, value) => [el("div", { class: "stat" }, el("dt", {}, name), el("dd", { "data-stat": name }, String(value)))];
  const drawCounts = (q) => counts.replaceChildren(...stat("Images waiting", q.imagesWaiting),
    ...stat("Batches running", q.batchesWaiting), ...stat("Images in queue", q.size));
  // Counts, and batches submitted since the page opened (from here or elsewhere) that have no
  // outcome yet, so no event has named them.
  const refreshCounts = async () => {
    try {
      const q = await api("GET", `/customers/${c}/queue`);
      drawCounts(q);
      const running = [...rows.values()].filter((r) => r.dataset.done !== "true").length;
      if (q.batchesWaiting > running) {
        const act = await api("GET", `/customers/${c}/queue/active?pageSize=500`);
        for (const b of act.member || []) if (!rows.has(b.id)) addRow(b);
      }
    } catch { /* the next event or tick tries again */ }
  };

  try {
    const [q, act, rec] = await Promise.all([
      api("GET", `/customers/${c}/queue`),
      api("GET", `/customers/${c}/queue/active?pageSize=500`),
      api("GET", `/customers/${c}/queue/recent?pageSize=10`)]);
    drawCounts(q);
    for (const b of act.member || []) addRow(b);
    emptyActive();
    for (const b of rec.member || [])
      recent.append(el("tr", {}, el("td", {}, el("a", { href: `/portal/customers/${c}/batches/${b.id}` }, `Batch ${b.id}`)),
        el("td", {}, batchState(b)), el("td", { class: "num" }, b.count), el("td", { class: "num" }, b.errors),
        el("td", {}, fmtDate(b.finished))));
    if (!(rec.member || []).length)
      recent.append(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No batch has finished yet.")));
  } catch (e) {
    main.append(errorBox(e, "Could not load the dashboard"));
    return null;
  }

  let countsTimer = null;
  const close = openStream(`/customers/${c}/queue/stream`, {
    batch: (b) => {
      const r = rows.get(b.id) || addRow(b);
      r.update(b);
      if (b.finished) announce(`Batch ${b.id} finished: ${b.completed} completed, ${b.errors} failed`);
      // Queue counts follow the batches, at most twice a second.
      if (!countsTimer) countsTimer = setTimeout(() => { countsTimer = null; refreshCounts(); }, 500);
    },
  });
  const tick = setInterval(refreshCounts, 5000);
  return () => { close(); clearInterval(tick); if (countsTimer) clearTimeout(countsTimer); };
}
