// Talking to the feedback API: same origin, the session cookie (set by POST /v1/session).
// Every failure becomes an ApiError that says whether retrying can help.

export class ApiError extends Error {
  constructor(status, detail, retryAfterS) {
    super(detail);
    this.status = status; // 0: no answer at all (network)
    this.retryAfterS = retryAfterS;
  }
  // Worth retrying: no answer, the server busy or unavailable, a rate limit.
  get transient() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

function detailOf(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

export async function api(method, path, body, headers = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, `no answer from the server (${err.message})`, null);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const retry = Number(response.headers.get("Retry-After"));
    throw new ApiError(response.status, detailOf(parsed, response.status), retry > 0 ? retry : null);
  }
  return parsed;
}

export const get = (path) => api("GET", path);

export function stampUrl(alertId, which, stretch) {
  return `/v1/alerts/${encodeURIComponent(alertId)}/stamps/${which}.png?stretch=${stretch}`;
}
