// The portal's one door to the API: same-origin fetch with the session cookie, the CSRF token
// on every state-changing call, and API errors turned into ApiError with the API's own words.
let session = null;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

export function currentSession() { return session; }

async function errorFrom(res) {
  let detail = "";
  try {
    const body = await res.json();
    detail = body.detail || body.description || "";
  } catch { /* not JSON */ }
  return new ApiError(res.status, detail || `${res.status} ${res.statusText}`);
}

function headers(method, extra) {
  const h = { "X-Quire-Portal": "1", ...extra };
  if (method !== "GET" && method !== "HEAD" && session) h["X-CSRF-Token"] = session.csrfToken;
  return h;
}

// Calls the API; resolves to the JSON body (null for 204), rejects with ApiError.
export async function api(method, path, body) {
  const init = { method, headers: headers(method, {}), credentials: "same-origin" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "the server could not be reached: " + e.message);
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && path !== "/portal/session") window.dispatchEvent(new Event("quire:signed-out"));
    throw err;
  }
  return res.status === 204 ? null : res.json();
}

export async function loadSession() {
  const s = await api("GET", "/portal/session");
  session = s.signedIn ? s : null;
  return session;
}

export async function signIn(key, secret) {
  session = await api("POST", "/portal/session", { key, secret });
  return session;
}

export async function signOut() {
  try { await api("DELETE", "/portal/session"); } finally { session = null; }
}

// POSTs a file's bytes to /customers/{c}/uploads with upload progress (fetch has none).
export function uploadFile(customer, file, mediaType, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/customers/${customer}/uploads`);
    for (const [k, v] of Object.entries(headers("POST", { "Content-Type": mediaType })))
      xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, (body && (body.detail || body.description)) || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new ApiError(0, "the upload was cut off"));
    xhr.send(file);
  });
}

// A URL's path and query, so the page talks to the origin it was loaded from.
export function local(url) {
  try {
    const u = new URL(url, location.href);
    return u.pathname + u.search;
  } catch { return url; }
}
