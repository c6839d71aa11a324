// Loaded by every page (base.html): the nav's signed-in state, Sign out, the unread
// count, and the notification stream that brings live waitlist offers (offers.js).
//
// Other modules may listen for the events this module dispatches on `document`:
//   "dlsms:user"          detail: the user (or null), once known
//   "dlsms:notification"  detail: a notification from /notifications/stream

import { me, request, signOut } from "/static/js/api.js";
import { announce } from "/static/js/ui.js";
import { showOffer, loadOffers, dropOffer } from "/static/js/offers.js";

function setNav(user) {
  for (const el of document.querySelectorAll("[data-auth]")) {
    // "admin": staff pages' entries, shown only to the admin role (the pages check too).
    el.hidden = el.dataset.auth === "admin" ? user?.role !== "admin" : (el.dataset.auth === "in") !== Boolean(user);
  }
  const who = document.getElementById("nav-user");
  if (who && user) who.textContent = user.name || user.student_id;
  const signin = document.getElementById("nav-signin");
  if (signin && !user && !location.pathname.startsWith("/app/signin")) {
    signin.href = `/app/signin?next=${encodeURIComponent(location.pathname + location.search)}`;
  }
}

export async function refreshUnread() {
  const badge = document.getElementById("unread-count");
  if (!badge) return;
  try {
    const page = await request("GET", "/notifications", null, { query: { unread_only: true, limit: 1 } });
    const n = page.total;
    badge.textContent = n ? `${n} unread` : "";
    badge.hidden = !n;
  } catch {
    badge.hidden = true;
  }
}

function openNotificationStream() {
  // Same origin: the session cookie authenticates it; no token in the URL.
  const source = new EventSource("/notifications/stream");
  const onEvent = (event) => {
    let note;
    try {
      note = JSON.parse(event.data);
    } catch {
      return;
    }
    document.dispatchEvent(new CustomEvent("dlsms:notification", { detail: note }));
    refreshUnread();
    if (note.type === "waitlist.offer") showOffer(note.data);
    else if (note.type === "waitlist.expired") dropOffer(note.data.entry_id, "This offer has expired.");
  };
  for (const type of ["waitlist.offer", "waitlist.expired", "reservation.no_show", "reservation.cancelled", "reservation.reminder"]) {
    source.addEventListener(type, onEvent);
  }
  source.addEventListener("message", onEvent);
  // Offers made while the stream was down are in GET /waitlist: read them on each (re)open.
  source.addEventListener("open", () => loadOffers());
  return source;
}

async function start() {
  let user = null;
  try {
    user = await me();
  } catch {
    user = null;
  }
  setNav(user);
  document.dispatchEvent(new CustomEvent("dlsms:user", { detail: user }));
  const signout = document.getElementById("signout");
  signout?.addEventListener("click", async () => {
    try {
      await signOut();
    } catch (err) {
      announce(err.message);
      if (err.status !== 401) return;
    }
    location.assign("/app/signin");
  });
  if (user) {
    refreshUnread();
    loadOffers();
    openNotificationStream();
  }
}

start();
