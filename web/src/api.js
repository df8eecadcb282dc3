// Calls to the yizhangtu API: cookie session, X-CSRF-Token on writes, errors with Chinese messages.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `请求失败 (HTTP ${status})`);
    this.status = status;
    this.body = body || {};
    this.key = this.body.error;
    this.hint = this.body.hint;
    this.data = this.body.data;
  }
}

function cookie(name) {
  const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
  return m ? decodeURIComponent(m[1]) : null;
}

let csrf = null;
export function setCsrf(token) {
  csrf = token;
}

export async function api(path, { method = "GET", json, form, query } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    const s = q.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const headers = { Accept: "application/json" };
  const opts = { method, headers, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") {
    const token = csrf || cookie("yz_csrf");
    if (token) headers["X-CSRF-Token"] = token;
  }
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(json);
  } else if (form) {
    opts.body = form;
  }
  const resp = await fetch(url, opts);
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("json") ? await resp.json().catch(() => null) : await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, typeof body === "object" ? body : { message: String(body).slice(0, 200) });
  return body;
}

export function errorText(err) {
  if (err instanceof ApiError) return err.message + (err.hint ? ` (${err.hint})` : "");
  return String(err && err.message ? err.message : err);
}
