import { api } from "../api.js";
import { el, errorBox, fmtDate, batchState, pager, head } from "../ui.js";

export async function render(main, { c, query }) {
  const page = Math.max(1, Number(query.get("page")) || 1);
  main.append(el("h1", {}, "Batches"));
  let list;
  try {
    list = await api("GET", `/customers/${c}/queue/batches?orderByDescending=id&pageSize=50&page=${page}`);
  } catch (e) { main.append(errorBox(e, "Could not load the batches")); return; }
  const items = list.member || [];
  if (!items.length) {
    main.append(el("p", { class: "empty" }, "No batches yet. ",
      el("a", { href: `/portal/customers/${c}/upload` }, "Upload images"), " to create the first one."));
    return;
  }
  const columns = ["Batch", "State", "Images", "Completed", "Failed", "Submitted", "Finished", "Superseded"];
  main.append(el("div", { class: "table-wrap" }, el("table", {},
    head(columns),
    el("tbody", {}, ...items.map((b) => el("tr", {},
      el("td", {}, el("a", { href: `/portal/customers/${c}/batches/${b.id}` }, `Batch ${b.id}`)),
      el("td", {}, batchState(b)),
      el("td", { class: "num" }, b.count), el("td", { class: "num" }, b.completed),
      el("td", { class: "num" }, b.errors),
      el("td", {}, fmtDate(b.submitted)), el("td", {}, fmtDate(b.finished)),
      el("td", {}, b.superseded ? "yes" : "no")))))));
  const totalPages = list.view ? list.view.totalPages : 1;
  const nav = pager(`/portal/customers/${c}/batches`, page, totalPages);
  if (nav) main.append(nav);
}
