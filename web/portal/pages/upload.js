// Files (dropped or picked) are uploaded to /customers/{c}/uploads with per-file progress,
// CSV rows name origins; together they are queued in batches of at most the server's
// maximum, whose bars then move live.
import { api, uploadFile } from "../api.js";
import { el, errorBox, showError, progressBar, openStream, announce } from "../ui.js";

const TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", tif: "image/tiff",
                tiff: "image/tiff", webp: "image/webp", jp2: "image/jp2", gif: "image/gif" };

function guessType(name) {
  const m = /\.([A-Za-z0-9]+)(?:[?#].*)?$/.exec(name || "");
  return (m && TYPES[m[1].toLowerCase()]) || "";
}

function imageId(name) {
  return name.replace(/[\s/\\\u0000-\u001f]+/g, "_").slice(0, 255) || "image";
}

// RFC 4180 CSV: quoted fields, "" inside quotes, CRLF or LF.
export function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") { row.push(field); field = ""; }
    else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field); field = "";
      if (row.some((f) => f !== "")) rows.push(row);
      row = [];
    } else field += ch;
  }
  row.push(field);
  if (row.some((f) => f !== "")) rows.push(row);
  return rows;
}

// Members from a CSV with a header row (id, origin, space, string1..3, number1..3).
function csvMembers(text, defaultSpace) {
  const rows = parseCsv(text);
  if (!rows.length) throw new Error("the CSV is empty");
  const head = rows[0].map((h) => h.trim().toLowerCase());
  if (!head.includes("origin")) throw new Error("the CSV's first row must name its columns, one of them \"origin\"");
  const members = [];
  rows.slice(1).forEach((r, n) => {
    const v = Object.fromEntries(head.map((h, i) => [h, (r[i] || "").trim()]));
    if (!v.origin) throw new Error(`CSV row ${n + 2} has no origin`);
    const m = { origin: v.origin, space: v.space ? Number(v.space) : defaultSpace,
                mediaType: v.mediatype || guessType(v.origin) || "image/jpeg" };
    if (v.id) m.id = v.id;
    for (const k of ["string1", "string2", "string3"]) if (v[k]) m[k] = v[k];
    for (const k of ["number1", "number2", "number3"]) if (v[k]) {
      const num = Number(v[k]);
      if (!Number.isInteger(num)) throw new Error(`CSV row ${n + 2}: ${k} must be a whole number`);
      m[k] = num;
    }
    members.push(m);
  });
  return members;
}

export async function render(main, { c, query }) {
  main.append(el("h1", {}, "Upload"));
  let spaces, entry;
  try {
    [spaces, entry] = await Promise.all([api("GET", `/customers/${c}/spaces?pageSize=500`), api("GET", "/")]);
  } catch (e) { main.append(errorBox(e, "Could not load the spaces")); return null; }
  const maxBatch = entry.maxBatchSize || 250;
  if (!(spaces.member || []).length) {
    main.append(el("p", { class: "empty" }, "Images live in a space, and this customer has none yet. ",
      el("a", { href: `/portal/customers/${c}/spaces` }, "Create a space"), " first."));
    return null;
  }
  const space = el("select", { id: "space", name: "space" },
    ...spaces.member.map((s) => el("option", { value: s.id, selected: query.get("space") === String(s.id) }, `${s.name} (${s.id})`)));
  const files = el("input", { id: "files", type: "file", multiple: true, accept: "image/*" });
  const csv = el("input", { id: "csv", type: "file", accept: ".csv,text/csv" });
  const picked = el("p", { class: "muted", id: "picked" }, "No files chosen.");
  let dropped = [];
  const chosen = () => [...dropped, ...files.files];
  const showPicked = () => {
    const n = chosen().length;
    picked.textContent = n ? `${n} file${n > 1 ? "s" : ""} chosen: ${chosen().map((f) => f.name).join(", ")}` : "No files chosen.";
  };
  files.addEventListener("change", showPicked);
  const drop = el("div", { class: "drop", id: "drop",
    ondragover: (e) => { e.preventDefault(); drop.classList.add("over"); },
    ondragleave: () => drop.classList.remove("over"),
    ondrop: (e) => { e.preventDefault(); drop.classList.remove("over"); dropped = [...dropped, ...e.dataTransfer.files]; showPicked(); } },
    el("label", { for: "files" }, "Files"),
    el("p", { class: "muted" }, "Drop image files here, or choose them:"), files, picked);
  const button = el("button", { type: "submit" }, "Upload");
  const progress = el("section", { "aria-labelledby": "p-h", class: "upload-progress" });
  const form = el("form", { class: "card", onsubmit: (e) => { e.preventDefault(); submit(); } },
    el("div", { class: "field" }, el("label", { for: "space" }, "Space"), space),
    drop,
    el("div", { class: "field" }, el("label", { for: "csv" }, "CSV"), csv,
       el("p", { class: "muted" }, "Columns: id, origin, space, string1..3, number1..3 (a header row first).")),
    button);
  main.append(form, progress);

  const closers = [];
  async function submit() {
    showError(form, null);
    const list = chosen();
    const csvFile = csv.files[0];
    if (!list.length && !csvFile) { showError(form, new Error("choose files or a CSV first")); return; }
    const spaceId = Number(space.value);
    let members = [];
    try { if (csvFile) members = csvMembers(await csvFile.text(), spaceId); } catch (e) { showError(form, e, "CSV"); return; }
    button.disabled = true;
    progress.replaceChildren(el("h2", { id: "p-h" }, "Progress"));
    const fileList = el("ul", { class: "file-list" });
    progress.append(fileList);
    // Two uploads at a time: the connection stays busy without starving the page.
    const queue = list.map((f) => {
      const bar = el("progress", { max: f.size || 1, value: 0, "aria-label": `Upload of ${f.name}` });
      const note = el("span", { class: "muted" }, "waiting");
      fileList.append(el("li", {}, el("span", { class: "name" }, f.name), bar, note));
      return { f, bar, note };
    });
    let next = 0;
    const worker = async () => {
      while (next < queue.length) {
        const item = queue[next++];
        const type = item.f.type || guessType(item.f.name) || "application/octet-stream";
        item.note.textContent = "uploading";
        try {
          const up = await uploadFile(c, item.f, type, (loaded) => { item.bar.value = loaded; });
          item.bar.value = item.bar.max;
          item.note.textContent = "uploaded";
          members.push({ id: imageId(item.f.name), space: spaceId, origin: up.origin, mediaType: type });
        } catch (e) {
          item.note.replaceWith(errorBox(e, `${item.f.name} was not uploaded`));
        }
      }
    };
    await Promise.all([worker(), worker()]);
    if (!members.length) { button.disabled = false; return; }
    const batchList = el("ul", { class: "batch-list" });
    progress.append(el("h3", {}, "Batches"), batchList);
    for (let i = 0; i < members.length; i += maxBatch) {
      const chunk = members.slice(i, i + maxBatch);
      try {
        const b = await api("POST", `/customers/${c}/queue`, { "@type": "Collection", member: chunk });
        const bar = progressBar(b);
        batchList.append(el("li", { class: "batch-row" },
          el("a", { href: `/portal/customers/${c}/batches/${b.id}` }, `Batch ${b.id}`), bar));
        announce(`Batch ${b.id} queued with ${b.count} images`);
        closers.push(openStream(`/customers/${c}/queue/batches/${b.id}/stream`, { batch: (nb) => bar.update(nb) }, true));
      } catch (e) {
        batchList.append(el("li", {}, errorBox(e, `Images ${i + 1}–${i + chunk.length} were not queued`)));
      }
    }
    dropped = [];
    files.value = "";
    csv.value = "";
    showPicked();
    button.disabled = false;
  }
  return () => closers.forEach((f) => f());
}
