import { api } from "../api.js";
import { el, errorBox, showError, fmtDate, announce, head } from "../ui.js";

export async function render(main, { c, go }) {
  main.append(el("h1", {}, "Spaces"));
  const name = el("input", { id: "space-name", name: "name", required: true });
  const form = el("form", { class: "card inline", onsubmit: async (e) => {
    e.preventDefault();
    showError(form, null);
    try {
      const s = await api("POST", `/customers/${c}/spaces`, { name: name.value.trim() });
      announce(`Space ${s.name} created`);
      go(location.pathname, true);
    } catch (err) { showError(form, err, "Create space failed"); }
  } }, el("div", { class: "field" }, el("label", { for: "space-name" }, "Space"), name),
     el("button", { type: "submit" }, "Create space"));
  main.append(form);
  let list;
  try { list = await api("GET", `/customers/${c}/spaces?pageSize=500`); } catch (e) { main.append(errorBox(e, "Could not load the spaces")); return; }
  const items = list.member || [];
  if (!items.length) {
    main.append(el("p", { class: "empty" }, "No spaces yet. Name one above and press Create space; then upload images into it."));
    return;
  }
  main.append(el("div", { class: "table-wrap" }, el("table", {},
    head(["Id", "Name", "Created", ""]),
    el("tbody", {}, ...items.map((s) => {
      const cell = el("td", { class: "row-actions" },
        el("a", { href: `/portal/customers/${c}/upload?space=${s.id}` }, "Upload here"),
        el("button", { type: "button", class: "danger", onclick: async () => {
          showError(cell, null);
          try { await api("DELETE", `/customers/${c}/spaces/${s.id}`); announce(`Space ${s.name} deleted`); go(location.pathname, true); }
          catch (err) { showError(cell, err, "Delete failed"); }
        } }, "Delete"));
      return el("tr", { "data-space": s.id }, el("td", { class: "num" }, s.id), el("td", {}, s.name), el("td", {}, fmtDate(s.created)), cell);
    })))));
}
