// One image: metadata, the deep-zoom viewer (OpenSeadragon, shipped from npm at build time),
// its IIIF URLs to copy, Reingest and Delete.
import { api, local } from "../api.js";
import { el, errorBox, showError, fmtDate, imageState, announce } from "../ui.js";

let osdLoading = null;
function loadViewer() {
  if (window.OpenSeadragon) return Promise.resolve(window.OpenSeadragon);
  if (!osdLoading)
    osdLoading = new Promise((resolve, reject) => {
      const s = el("script", { src: "/portal/vendor/openseadragon/openseadragon.min.js" });
      s.onload = () => resolve(window.OpenSeadragon);
      s.onerror = () => { osdLoading = null; reject(new Error("the deep-zoom viewer is not installed with this portal")); };
      document.head.append(s);
    });
  return osdLoading;
}

function copyRow(label, url) {
  const input = el("input", { readonly: true, value: url, id: "url-" + label.replace(/\W+/g, "-").toLowerCase() });
  const status = el("span", { class: "muted", "aria-live": "polite" });
  return el("div", { class: "copy-row" }, el("label", { for: input.id }, label), input,
    el("button", { type: "button", class: "secondary", "aria-label": `Copy ${label}`, onclick: async () => {
      input.select();
      try { await navigator.clipboard.writeText(url); status.textContent = "copied"; }
      catch { status.textContent = "selected: press Ctrl+C"; }
    } }, "Copy"), status);
}

export async function render(main, { c, params, go }) {
  const [s, id] = [Number(params[0]), params[1]];
  const path = `/customers/${c}/spaces/${s}/images/${encodeURIComponent(id)}`;
  main.append(el("h1", {}, id));
  let img;
  try { img = await api("GET", path); } catch (e) { main.append(errorBox(e, `Could not load image ${id}`)); return null; }
  const state = imageState(img);
  const meta = el("dl", { class: "meta" });
  const add = (k, v) => { if (v !== undefined && v !== null && v !== "") meta.append(el("dt", {}, k), el("dd", {}, String(v))); };
  add("State", state); add("Error", img.error); add("Space", s);
  add("Size", img.width ? `${img.width} × ${img.height} px` : "");
  add("Media type", img.mediaType); add("Origin", img.origin);
  add("Created", fmtDate(img.created)); add("Finished", fmtDate(img.finished));
  for (const k of ["string1", "string2", "string3", "number1", "number2", "number3"]) add(k, img[k]);
  if (img.batch) meta.append(el("dt", {}, "Batch"), el("dd", {}, el("a", { href: `/portal/customers/${c}/batches/${img.batch.split("/").pop()}` }, `Batch ${img.batch.split("/").pop()}`)));

  const viewer = el("div", { id: "viewer", class: "viewer", role: "img", "aria-label": `Deep-zoom view of ${id}` });
  const info = img.imageService ? img.imageService + "/info.json" : "";
  const urls = el("div", { class: "urls" });
  if (img.imageService) {
    urls.append(copyRow("IIIF Image API info.json", info),
      copyRow("Full image", img.imageService + "/full/max/0/default.jpg"));
    if (img.thumbnailImageService) urls.append(copyRow("Thumbnails info.json", img.thumbnailImageService + "/info.json"));
  }
  const actions = el("div", { class: "actions" });
  actions.append(
    el("button", { type: "button", onclick: async (e) => {
      e.currentTarget.disabled = true;
      showError(actions, null);
      try { await api("POST", `${path}/reingest`); announce(`${id} queued for reingest`); go(location.pathname, true); }
      catch (err) { showError(actions, err, "Reingest failed"); e.target.disabled = false; }
    } }, "Reingest"),
    el("button", { type: "button", class: "danger", onclick: async (e) => {
      if (!confirm(`Delete image ${id} and its derivatives?`)) return;
      showError(actions, null);
      try { await api("DELETE", path); announce(`${id} deleted`); go(`/portal/customers/${c}/`, true); }
      catch (err) { showError(actions, err, "Delete failed"); e.target.disabled = false; }
    } }, "Delete"));
  main.append(el("div", { class: "image-page" },
    el("section", { "aria-label": "Viewer" }, viewer),
    el("section", { "aria-label": "Details" }, meta, actions, el("h2", {}, "IIIF URLs"), urls)));

  let osd = null;
  if (state !== "completed") {
    viewer.append(el("p", { class: "empty" }, state === "waiting" ? "The image is still being processed; reload when it completes." : "The image failed to ingest; fix its origin and press Reingest."));
    return null;
  }
  try {
    const OpenSeadragon = await loadViewer();
    window.viewerState = { opened: false, tilesLoaded: 0, tilesFailed: [] };
    osd = OpenSeadragon({ element: viewer, prefixUrl: "/portal/vendor/openseadragon/images/",
      tileSources: local(info), crossOriginPolicy: "Anonymous", drawer: "canvas",
      showNavigationControl: true, navigationControlAnchor: OpenSeadragon.ControlAnchor.TOP_LEFT });
    osd.addHandler("open", () => { window.viewerState.opened = true; });
    osd.addHandler("open-failed", (e) => { viewer.append(errorBox(new Error(e.message || "cannot open"), "Viewer")); });
    osd.addHandler("tile-loaded", () => { window.viewerState.tilesLoaded++; });
    osd.addHandler("tile-load-failed", (e) => { window.viewerState.tilesFailed.push(e.message || "failed"); });
  } catch (e) { viewer.append(errorBox(e, "Viewer")); }
  return () => { if (osd) osd.destroy(); };
}
