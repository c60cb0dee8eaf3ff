import { api } from "../api.js";
import { el, errorBox, showError, fmtDate, announce, head } from "../ui.js";

export async function render(main, { c, go }) {
  main.append(el("h1", {}, "Keys"));
  const made = el("div", { "aria-live": "polite" });
  const bar = el("div", { class: "actions" }, el("button", { type: "button", onclick: async () => {
    showError(bar, null);
    try {
      const k = await api("POST", `/customers/${c}/keys`);
      made.replaceChildren(el("div", { class: "card notice" },
        el("p", {}, "New key created. Copy the secret now: it is shown only once."),
        el("dl", { class: "meta" }, el("dt", {}, "Key"), el("dd", { class: "mono" }, k.key),
           el("dt", {}, "Secret"), el("dd", { class: "mono" }, k.secret))));
      announce("Key created");
      await drawList();
    } catch (err) { showError(bar, err, "Create key failed"); }
  } }, "Create key"));
  const listBox = el("div");
  main.append(bar, made, listBox);
  async function drawList() {
    let list;
    try { list = await api("GET", `/customers/${c}/keys?pageSize=500`); } catch (e) { listBox.replaceChildren(errorBox(e, "Could not load the keys")); return; }
    const items = list.member || [];
    if (!items.length) { listBox.replaceChildren(el("p", { class: "empty" }, "No keys. Press Create key to make one for a script or a colleague.")); return; }
    listBox.replaceChildren(el("div", { class: "table-wrap" }, el("table", {},
      head(["Key", "Created", ""]),
      el("tbody", {}, ...items.map((k) => {
        const cell = el("td", { class: "row-actions" }, el("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Revoke key ${k.key}? Scripts and sessions using it stop working.`)) return;
          showError(cell, null);
          try { await api("DELETE", `/customers/${c}/keys/${encodeURIComponent(k.key)}`); announce("Key revoked"); await drawList(); }
          catch (err) { showError(cell, err, "Delete failed"); }
        } }, "Delete"));
        return el("tr", {}, el("td", { class: "mono" }, k.key), el("td", {}, fmtDate(k.created)), cell);
      })))));
  }
  await drawList();
}
