// The one way pages talk to the JSON API.
//
//   import { request, ApiError, messageFor } from "/static/js/api.js";
//   const seats = await request("GET", "/seats", null, { query: { branch: "Main" } });
//   await request("POST", "/reservations", body, { idempotencyKey: crypto.randomUUID() });
//
// The session is the contract's cookie pair: `dlsms_session` (HttpOnly, sent by the
// browser) and `dlsms_csrf` (readable), echoed as `X-CSRF-Token` on every write. No token
// is ever kept in localStorage or put in a URL. Every failure is thrown as an ApiError whose
// `message` is a sentence for people (from MESSAGES, by the contract's error `code`).

const CSRF_COOKIE = "dlsms_csrf";
const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** The value of a cookie readable by scripts, or null. */
export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** True when this browser holds a session (it may still have expired: `me()` tells). */
export function hasSession() {
  return cookie(CSRF_COOKIE) !== null;
}

/** "14:05" in the browser's time zone. */
export function hhmm(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

/** "Tue 1 Dec, 14:05" in the browser's time zone. */
export function dayTime(iso) {
  const d = new Date(iso);
  const day = d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" });
  return `${day}, ${hhmm(iso)}`;
}

// One sentence per contract `code`. A function gets the error body (for its extra fields).
export const MESSAGES = {
  not_authenticated: "Please sign in first.",
  invalid_token: "Your session has ended. Please sign in again.",
  invalid_credentials: "That student ID and password don't match.",
  forbidden: "Your account is not allowed to do that.",
  csrf_failed: "This page is out of date. Reload it and try again.",
  suspended: (b) =>
    b.suspended_until
      ? `Booking suspended until ${dayTime(b.suspended_until)} after repeated no-shows.`
      : "Booking suspended after repeated no-shows.",
  not_found: "We couldn't find that. It may have been removed.",
  already_exists: "That already exists (an account with this ID, or the same waitlist entry).",
  seat_conflict: (b) =>
    b.free_at
      ? `Someone just took this seat. It frees up at ${hhmm(b.free_at)}. You can join the waitlist.`
      : "Someone just took this seat. You can join the waitlist.",
  user_overlap: "You already have a reservation at that time.",
  seat_unavailable: "This seat is out of service (maintenance or closed).",
  invalid_state: "That can't be done with this reservation any more. Reload to see its status.",
  checkin_window: "Check-in is only open from shortly before the start until the grace period ends.",
  offer_expired: "Sorry, this offer has expired; the seat went to the next person in line.",
  slot_available: "That seat is free for the whole time: book it instead of waiting.",
  invalid_interval: (b) => `Check the times: ${b.detail || "the interval is not allowed."}`,
  outside_opening_hours: (b) => b.detail || "The library is closed at that time.",
  quota_exceeded: (b) => quotaText(b),
  idempotency_mismatch: "That request was already sent with different details. Try again.",
  idempotency_in_progress: "Still working on your previous tap. One moment, then reload.",
  rate_limited: (b, r) => {
    const wait = r && r.headers.get("Retry-After");
    return wait ? `Too many attempts. Try again in ${wait} seconds.` : "Too many attempts. Wait a moment.";
  },
  payload_too_large: "That is too much data to send at once.",
  service_unavailable: "The service is busy or restarting. Try again in a moment.",
  validation_error: (b) => `Please check the form: ${validationText(b)}`,
  network_error: "Can't reach the server. Check your connection and try again.",
};

/** A number of hours or bookings as words: 1 -> "1", 2.5 -> "2.5", 2.3333 -> "2.3". */
export function amount(n) {
  return String(Math.round(Number(n) * 10) / 10);
}

/** The sentence for a 409 quota_exceeded body ({quota, limit, used}). */
export function quotaText(b) {
  if (b.limit === undefined || b.limit === null) return b.detail || "You've reached this library's booking limit.";
  const used = amount(b.used);
  const limit = amount(b.limit);
  if (b.quota === "max_bookings_per_day") {
    return `You've already made ${used} of the ${limit} ${Number(b.limit) === 1 ? "booking" : "bookings"} this library allows per student on that day.`;
  }
  if (b.quota === "max_hours_per_week") {
    return `This would take you over this library's weekly limit: you've booked ${used} of your ${limit} ${Number(b.limit) === 1 ? "hour" : "hours"} that week.`;
  }
  return `You've reached this library's limit: ${used} of ${limit} used.`;
}

function validationText(body) {
  if (!Array.isArray(body.detail)) return body.detail || "something is not valid.";
  return body.detail
    .map((d) => `${(d.loc || []).filter((p) => p !== "body" && p !== "query").join(".") || "input"}: ${d.msg}`)
    .join("; ");
}

/** The human sentence for an error body (and its response, for headers). */
export function messageFor(code, body = {}, response = null) {
  const entry = MESSAGES[code];
  if (typeof entry === "function") return entry(body, response);
  if (entry) return entry;
  return body.detail && typeof body.detail === "string" ? body.detail : "Something went wrong. Try again.";
}

export class ApiError extends Error {
  /** status: HTTP status (0: network); code: the contract's code; body: the JSON body. */
  constructor(status, code, body, response = null) {
    super(messageFor(code, body, response));
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/**
 * Call the API. `body` is sent as JSON (null: none). Options: `query` (object; null and
 * undefined values skipped), `idempotencyKey` (one per user attempt: a double tap or a
 * retry then books once). Resolves to the parsed JSON (null for an empty body); rejects
 * with ApiError.
 */
export async function request(method, path, body = null, { query = null, idempotencyKey = null } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== null) headers["Content-Type"] = "application/json";
  if (WRITES.has(method)) {
    const csrf = cookie(CSRF_COOKIE);
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== "") params.set(k, String(v));
    const qs = params.toString();
    if (qs) url += (url.includes("?") ? "&" : "?") + qs;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === null ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "network_error", {});
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (!response.ok) {
    const payload = data || {};
    const code = payload.code || (response.status === 422 ? "validation_error" : `http_${response.status}`);
    throw new ApiError(response.status, code, payload, response);
  }
  return data;
}

let meCache;

/** The signed-in user (`GET /auth/me`), or null when signed out. Asked once per page. */
export function me() {
  if (meCache === undefined) {
    meCache = hasSession()
      ? request("GET", "/auth/me").catch((err) => {
          if (err.status === 401) return null;
          throw err;
        })
      : Promise.resolve(null);
  }
  return meCache;
}

export async function signIn(studentId, password) {
  meCache = undefined;
  return request("POST", "/auth/session", { student_id: studentId, password });
}

export async function signOut() {
  meCache = undefined;
  return request("DELETE", "/auth/session");
}

/** Send the visitor to sign in, then back here (only same-site paths are followed). */
export function requireSignIn() {
  const next = location.pathname + location.search;
  location.assign(`/app/signin?next=${encodeURIComponent(next)}`);
}

/** Where `?next=` points, if it is a path of this site; else the fallback. */
export function nextPath(fallback = "/app/branches") {
  const next = new URLSearchParams(location.search).get("next");
  return next && next.startsWith("/") && !next.startsWith("//") ? next : fallback;
}
