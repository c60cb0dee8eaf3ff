// Small shared pieces: element builder, progress bar, error box, live announcements, streams.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function announce(text) {
  const live = document.getElementById("live");
  live.textContent = "";
  setTimeout(() => { live.textContent = text; }, 30);
}

export function errorBox(err, context) {
  return el("p", { class: "error", role: "alert" },
            (context ? context + ": " : "") + (err && err.message ? err.message : String(err)));
}

// Shows an error next to `anchor` (replacing the previous one there), or clears it.
export function showError(anchor, err, context) {
  const old = anchor.querySelector(":scope > .error");
  if (old) old.remove();
  if (err) anchor.append(errorBox(err, context));
}

export function fmtDate(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function timeLeft(batch) {
  if (batch.finished) return "finished " + fmtDate(batch.finished);
  if (!batch.estCompletion) return "estimating…";
  const ms = new Date(batch.estCompletion) - Date.now();
  const min = Math.max(1, Math.round(ms / 60000));
  return ms <= 30000 ? "less than a minute left" : `about ${min} min left`;
}

export function batchState(b) {
  if (b.superseded) return "superseded";
  if (b.finished) return b.errors > 0 ? "finished with errors" : "completed";
  return "in progress";
}

// A batch's live progress bar: role=progressbar, aria-valuenow = completed + errors,
// aria-valuemax = count, labelled with the batch id. update(batch) moves it in place (the
// element keeps its size, so nothing around it jumps).
export function progressBar(batch) {
  const fill = el("span", { class: "fill" });
  const bad = el("span", { class: "fill bad" });
  const bar = el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0" }, fill, bad);
  const text = el("span", { class: "bar-text" });
  const box = el("div", { class: "progress" }, bar, text);
  box.update = (b) => {
    const done = b.completed + b.errors;
    bar.setAttribute("aria-valuenow", String(done));
    bar.setAttribute("aria-valuemax", String(b.count));
    bar.setAttribute("aria-label", `Batch ${b.id} progress`);
    bar.setAttribute("aria-valuetext", `${done} of ${b.count} done, ${b.errors} failed`);
    const pct = (n) => (b.count ? (100 * n) / b.count : 0);
    fill.style.width = pct(b.completed) + "%";
    bad.style.left = pct(b.completed) + "%";
    bad.style.width = pct(b.errors) + "%";
    text.textContent = `${done} / ${b.count}` + (b.errors ? ` · ${b.errors} failed` : "") +
                       ` · ${Math.round(pct(done))} %`;
    box.dataset.done = b.finished ? "true" : "false";
  };
  box.update(batch);
  return box;
}

// Opens a server-sent event stream. Handlers: batch(json), image(json). Closed by the
// returned function, and by itself after a finished batch when `endOnFinish`.
export function openStream(url, handlers, endOnFinish) {
  const es = new EventSource(url);
  es.addEventListener("batch", (e) => {
    const b = JSON.parse(e.data);
    handlers.batch && handlers.batch(b);
    if (endOnFinish && b.finished) es.close();
  });
  es.addEventListener("image", (e) => handlers.image && handlers.image(JSON.parse(e.data)));
  es.onerror = () => { if (es.readyState === EventSource.CLOSED && handlers.closed) handlers.closed(); };
  return () => es.close();
}

// A stored thumbnail (the 100 px box of the default policy: /thumbs serves only stored
// sizes), drawn at `size` px, lazy-loaded, its box reserved so nothing moves when it arrives.
export function thumb(c, space, id, size = 100) {
  return el("img", {
    class: "thumb", loading: "lazy", width: size, height: size, alt: `Thumbnail of ${id}`,
    src: `/thumbs/${c}/${space}/${encodeURIComponent(id)}/full/!100,100/0/default.jpg`,
  });
}

export function imageState(img) {
  if (img.ingesting) return "waiting";
  return img.error ? "error" : "completed";
}

export function pager(base, page, totalPages) {
  if (!totalPages || totalPages <= 1) return null;
  return el("nav", { class: "pager", "aria-label": "Pages" },
            page > 1 ? el("a", { href: `${base}?page=${page - 1}` }, "Previous page") : null,
            el("span", {}, `Page ${page} of ${totalPages}`),
            page < totalPages ? el("a", { href: `${base}?page=${page + 1}` }, "Next page") : null);
}

// A table head; an empty name is a column of thumbnails or buttons, named for screen readers.
export function head(names, hidden = "Actions") {
  return el("thead", {}, el("tr", {}, ...names.map((h) =>
    el("th", { scope: "col" }, h || el("span", { class: "visually-hidden" }, hidden)))));
}
