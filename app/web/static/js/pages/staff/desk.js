// /app/staff/desk: find a student by student ID (GET /admin/users?student_id=) or user id,
// list their reservations (GET /admin/reservations?user_id=) and check them in at the desk
// (POST /admin/reservations/{id}/checkin: the same window as the student's own check-in).
import { request, hhmm, dayTime } from "/static/js/api.js";
import { h, timeEl, busy, showError, clearError, announce } from "/static/js/ui.js";
import { staffOnly } from "/static/js/staff.js";

const $ = (id) => document.getElementById(id);
const form = $("find");
const pageError = $("page-error");

const STATUS_WORDS = {
  HELD: "◔ Offered (waitlist)",
  CONFIRMED: "● Booked",
  CHECKED_IN: "■ Checked in",
  COMPLETED: "✓ Completed",
  CANCELLED: "✕ Cancelled",
  NO_SHOW: "⚠ No-show",
};
const CURRENT = ["HELD", "CONFIRMED", "CHECKED_IN"];

let person = null; // {id, student_id?, name?}

function checkInPart(r) {
  if (r.status !== "CONFIRMED") return null;
  const nowMs = Date.now();
  const opens = new Date(r.check_in_opens_at).getTime();
  const deadline = new Date(r.check_in_deadline).getTime();
  if (nowMs < opens) return h("p", { class: "meta" }, "Check-in opens at ", timeEl(r.check_in_opens_at, dayTime(r.check_in_opens_at)), ".");
  if (nowMs > deadline) return h("p", { class: "meta" }, "The check-in window closed at ", timeEl(r.check_in_deadline, hhmm(r.check_in_deadline)), ".");
  const button = h("button", { type: "button", class: "button primary" }, "Check in");
  button.addEventListener("click", () =>
    busy(button, async () => {
      try {
        await request("POST", `/admin/reservations/${r.id}/checkin`);
        announce(`Checked in: seat ${r.seat.label}, ${r.seat.branch}.`);
        await load();
      } catch (err) {
        showError(pageError, err);
      }
    }),
  );
  return h("div", { class: "actions" }, button, h("p", { class: "meta" }, "Window open until ", timeEl(r.check_in_deadline, hhmm(r.check_in_deadline)), "."));
}

function item(r) {
  return h("li", { class: "card", dataset: { reservationId: r.id, status: r.status } },
    h("h4", {}, `Seat ${r.seat.label} · ${r.seat.branch} · ${r.seat.area}`),
    h("p", { class: "meta" }, timeEl(r.start_time, dayTime(r.start_time)), " to ", timeEl(r.end_time, hhmm(r.end_time))),
    h("p", {}, h("span", { class: "status" }, STATUS_WORDS[r.status] || r.status), r.cancel_reason ? ` (${r.cancel_reason})` : ""),
    checkInPart(r),
  );
}

async function load() {
  const page = await request("GET", "/admin/reservations", null, { query: { user_id: person.id, limit: 100 } });
  const current = page.items.filter((r) => CURRENT.includes(r.status)).reverse(); // soonest first
  const earlier = page.items.filter((r) => !CURRENT.includes(r.status)).slice(0, 20);
  $("current").replaceChildren(...(current.length ? current.map(item) : [h("li", { class: "empty" }, "Nothing booked now or later.")]));
  $("earlier").replaceChildren(...(earlier.length ? earlier.map(item) : [h("li", { class: "empty" }, "No earlier reservations.")]));
  const who = person.student_id ? `${person.name} · student ID ${person.student_id} · user ${person.id}` : `User ${person.id}`;
  $("found-title").textContent = person.name ? `Reservations of ${person.name}` : `Reservations of user ${person.id}`;
  $("found-who").textContent = `${who} · ${page.total} reservation${page.total === 1 ? "" : "s"} in all`;
  $("found").hidden = false;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearError(pageError);
  const value = form.who.value.trim();
  const by = form.by.value;
  busy(form.querySelector("[type=submit]"), async () => {
    try {
      if (by === "user") {
        if (!/^[1-9][0-9]{0,17}$/.test(value)) {
          throw new Error("A user ID is a whole number, like 42.");
        }
        person = { id: Number(value) };
      } else {
        person = await request("GET", "/admin/users", null, { query: { student_id: value } });
      }
      await load();
    } catch (err) {
      $("found").hidden = true;
      if (err.status === 404) err.message = by === "user" ? "No such user." : `No student with the ID ${value}.`;
      showError(pageError, err);
    }
  });
});

staffOnly();
