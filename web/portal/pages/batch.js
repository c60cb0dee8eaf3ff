// One batch: its bar and counts move with the batch stream, every image row changes state as
// its outcome arrives, and Retry failed / Test act on it.
import { api } from "../api.js";
import { el, errorBox, showError, fmtDate, progressBar, openStream, announce, timeLeft,
         batchState, thumb, imageState, head } from "../ui.js";

export async function render(main, { c, params }) {
  const b = Number(params[0]);
  const base = `/customers/${c}/queue/batches/${b}`;
  const heading = el("h1", {}, `Batch ${b}`);
  main.append(heading);
  let batch;
  try { batch = await api("GET", base); } catch (e) { main.append(errorBox(e, `Could not load batch ${b}`)); return null; }

  const bar = progressBar(batch);
  const counts = el("dl", { class: "stats" });
  const eta = el("p", { class: "muted eta" });
  const actions = el("div", { class: "actions" });
  const rows = new Map();
  const tbody = el("tbody");
  main.append(bar, counts, eta, actions,
    el("h2", {}, "Images"),
    el("div", { class: "table-wrap" }, el("table", { class: "images" },
      head(["", "Image", "Space", "State", "Error"], "Thumbnail"),
      tbody)));

  const drawBatch = (nb) => {
    batch = nb;
    bar.update(nb);
    const stat = (name, value) => [el("div", { class: "stat" }, el("dt", {}, name), el("dd", {}, String(value)))];
    counts.replaceChildren(...stat("Images", nb.count), ...stat("Completed", nb.completed),
      ...stat("Failed", nb.errors), ...stat("State", batchState(nb)));
    eta.textContent = `Submitted ${fmtDate(nb.submitted)} · ${timeLeft(nb)}` +
                      (nb.superseded ? " · superseded by a newer batch" : "");
  };

  const setRow = (img) => {
    let r = rows.get(`${img.space}/${img.id}`);
    if (!r) return;
    r.state.textContent = img.state;
    r.row.dataset.state = img.state;
    r.error.textContent = img.error || "";
    if (img.state === "completed" && !r.thumb.firstChild) r.thumb.append(thumb(c, img.space, img.id, 64));
    if (img.state !== "completed") r.thumb.replaceChildren();
  };

  try {
    const list = await api("GET", `${base}/images?pageSize=500`);
    for (const img of list.member || []) {
      const state = el("td", { class: "state" });
      const error = el("td", { class: "err" });
      const th = el("td", { class: "thumb-cell" });
      const row = el("tr", { "data-image": img.id },
        th, el("td", {}, el("a", { href: `/portal/customers/${c}/images/${img.space}/${encodeURIComponent(img.id)}` }, img.id)),
        el("td", { class: "num" }, img.space), state, error);
      rows.set(`${img.space}/${img.id}`, { row, state, error, thumb: th });
      tbody.append(row);
      setRow({ id: img.id, space: img.space, state: imageState(img), error: img.error });
    }
    if (!rows.size) tbody.append(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "This batch has no images.")));
  } catch (e) { main.append(errorBox(e, "Could not list the batch's images")); }
  drawBatch(batch);

  let close = () => {};
  const watch = () => {
    close();
    close = openStream(`${base}/stream`, {
      batch: (nb) => {
        drawBatch(nb);
        if (nb.finished) announce(`Batch ${nb.id} finished: ${nb.completed} completed, ${nb.errors} failed`);
      },
      image: (img) => { setRow(img); if (img.state === "error") announce(`${img.id} failed: ${img.error}`); },
    }, true);
  };
  if (!batch.finished) watch();

  const act = async (button, path, done) => {
    button.disabled = true;
    showError(actions, null);
    try { await done(await api("POST", path)); } catch (e) { showError(actions, e, button.textContent + " failed"); }
    button.disabled = false;
  };
  const retry = el("button", { type: "button", onclick: (e) => act(e.currentTarget, `${base}/retry`, (nb) => {
    // The failed rows go back to waiting; the stream tells their new outcomes.
    for (const r of rows.values()) if (r.row.dataset.state === "error") setRow({ id: r.row.dataset.image, space: Number(r.row.children[2].textContent), state: "waiting", error: "" });
    drawBatch(nb);
    announce(`Retrying the failed images of batch ${nb.id}`);
    watch();
  }) }, "Retry failed");
  const test = el("button", { type: "button", class: "secondary", onclick: (e) => act(e.currentTarget, `${base}/test`, async (r) => {
    announce(r.success ? "Test changed the batch" : "Test found nothing to change");
    drawBatch(await api("GET", base));
  }) }, "Test");
  actions.append(retry, test);
  return () => close();
}
