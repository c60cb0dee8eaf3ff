// The portal's shell: signs in, draws the navigation, and routes each URL to one page module.
// Every page lives at /portal/customers/{c}/… so any view is a bookmarkable, reloadable URL;
// an administrator switches customer by switching that {c}.
import { api, currentSession, loadSession, signOut } from "./api.js";
import { el, errorBox } from "./ui.js";
import * as signInPage from "./pages/sign-in.js";
import * as dashboard from "./pages/dashboard.js";
import * as batches from "./pages/batches.js";
import * as batch from "./pages/batch.js";
import * as upload from "./pages/upload.js";
import * as image from "./pages/image.js";
import * as spaces from "./pages/spaces.js";
import * as keys from "./pages/keys.js";

const C = "^/portal/customers/(\\d+)";
const routes = [
  [new RegExp(C + "/?$"), dashboard, "Dashboard"],
  [new RegExp(C + "/batches$"), batches, "Batches"],
  [new RegExp(C + "/batches/(\\d+)$"), batch, "Batch"],
  [new RegExp(C + "/upload$"), upload, "Upload"],
  [new RegExp(C + "/images/(\\d+)/([^/]+)$"), image, "Image"],
  [new RegExp(C + "/spaces$"), spaces, "Spaces"],
  [new RegExp(C + "/keys$"), keys, "Keys"],
];
const NAV = [["", "Dashboard"], ["batches", "Batches"], ["upload", "Upload"],
             ["spaces", "Spaces"], ["keys", "Keys"]];

let cleanup = null;
let customers = null;

export function go(path, replace) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

function drawNav(c, active) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const s = currentSession();
  nav.replaceChildren();
  who.replaceChildren();
  if (!s) return;
  const list = el("ul");
  for (const [path, name] of NAV) {
    const href = `/portal/customers/${c}/${path}`;
    list.append(el("li", {}, el("a", { href, "aria-current": active === name ? "page" : null }, name)));
  }
  nav.append(list);
  if (s.admin) {
    const select = el("select", { id: "customer-switch",
      onchange: (e) => go(location.pathname.replace(/^\/portal\/customers\/\d+/, `/portal/customers/${e.target.value}`) + location.search) });
    const fill = (items) => {
      select.replaceChildren(...items.map((m) =>
        el("option", { value: m.id, selected: String(m.id) === String(c) }, `${m.name} (${m.id})`)));
    };
    fill(customers || [{ id: c, name: "customer" }]);
    if (!customers)
      api("GET", "/customers?pageSize=500").then((r) => { customers = r.member || []; fill(customers); })
        .catch(() => {});
    who.append(el("label", { for: "customer-switch" }, "Customer"), select);
  } else {
    who.append(el("span", { class: "muted" }, s.customerDisplayName || s.customerName || `Customer ${s.customerId}`));
  }
  who.append(el("button", { type: "button", class: "secondary", onclick: async () => {
    try { await signOut(); } catch { /* signed out anyway */ }
    customers = null;
    go("/portal/sign-in", true);
  } }, "Sign out"));
}

export async function render() {
  if (cleanup) { try { cleanup(); } catch { /* page already gone */ } cleanup = null; }
  const main = document.getElementById("main");
  const path = location.pathname;
  let s = currentSession();
  if (!s) {
    try { s = await loadSession(); } catch (e) { main.replaceChildren(errorBox(e, "Cannot reach Quire")); return; }
  }
  if (!s || path === "/portal/sign-in") {
    if (s && path === "/portal/sign-in") return go(`/portal/customers/${s.customerId}/`, true);
    if (path !== "/portal/sign-in")
      return go("/portal/sign-in?next=" + encodeURIComponent(path + location.search), true);
    drawNav(0, "");
    document.title = "Sign in · Quire";
    main.replaceChildren();
    cleanup = signInPage.render(main, { go }) || null;
    return;
  }
  for (const [re, page, name] of routes) {
    const m = path.match(re);
    if (!m) continue;
    const c = Number(m[1]);
    drawNav(c, name);
    document.title = `${name} · Quire`;
    main.replaceChildren();
    const params = m.slice(2).map(decodeURIComponent);
    cleanup = (await page.render(main, { c, params, query: new URLSearchParams(location.search), go })) || null;
    return;
  }
  if (path === "/portal/" || path === "/portal") return go(`/portal/customers/${s.customerId}/`, true);
  drawNav(s.customerId, "");
  document.title = "Not found · Quire";
  main.replaceChildren(el("h1", {}, "Page not found"),
    el("p", {}, "There is no portal page at this address. ",
       el("a", { href: `/portal/customers/${s.customerId}/` }, "Go to the dashboard"), "."));
}

// Links inside the portal change the page without a reload; everything else is the browser's.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a[href]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/portal/")) return;
  e.preventDefault();
  go(url.pathname + url.search);
  document.getElementById("main").focus({ preventScroll: true });
});
window.addEventListener("popstate", render);
window.addEventListener("quire:signed-out", () => {
  if (location.pathname !== "/portal/sign-in") { loadSession().then((s) => { if (!s) render(); }); }
});
render();
