// /app/reservations: upcoming and history (GET /reservations?scope=). Check in while the
// window is open (countdown to the deadline), Check out, Cancel, Add to calendar (.ics).
import { request, me, requireSignIn, hhmm, dayTime } from "/static/js/api.js";
import { h, timeEl, countdown, busy, showError, clearError, announce } from "/static/js/ui.js";

const upcoming = document.getElementById("upcoming");
const history = document.getElementById("history");
const pageError = document.getElementById("page-error");

const STATUS_WORDS = {
  HELD: "◔ Offered to you",
  CONFIRMED: "● Booked",
  CHECKED_IN: "■ Checked in",
  COMPLETED: "✓ Completed",
  CANCELLED: "✕ Cancelled",
  NO_SHOW: "⚠ No-show",
};

const ACTIVE = ["HELD", "CONFIRMED", "CHECKED_IN"];

function action(label, onClick, cls = "button") {
  const button = h("button", { type: "button", class: cls }, label);
  button.addEventListener("click", () =>
    busy(button, async () => {
      try {
        await onClick();
        await load();
      } catch (err) {
        showError(pageError, err);
      }
    }),
  );
  return button;
}

function checkInPart(r) {
  const opens = new Date(r.check_in_opens_at).getTime();
  const deadline = new Date(r.check_in_deadline).getTime();
  const nowMs = Date.now();
  if (nowMs > deadline) return [h("p", { class: "meta" }, "The check-in window has closed.")];
  if (nowMs < opens) {
    // Reload when the window opens, so the button appears without a tap.
    setTimeout(load, Math.min(opens - nowMs + 500, 2 ** 31 - 1));
    return [h("p", { class: "meta" }, "Check-in opens at ", timeEl(r.check_in_opens_at, hhmm(r.check_in_opens_at)), ".")];
  }
  const left = h("span", { class: "countdown" });
  const part = [
    action("Check in", async () => {
      await request("POST", `/reservations/${r.id}/checkin`);
      announce(`Checked in to seat ${r.seat.label}.`);
    }, "button primary"),
    h("p", { class: "meta" }, "Check in by ", timeEl(r.check_in_deadline, hhmm(r.check_in_deadline)), " (", left, " left)"),
  ];
  countdown(left, r.check_in_deadline, load);
  return part;
}

function item(r) {
  const buttons = [];
  let extra = [];
  if (r.status === "CONFIRMED") {
    extra = checkInPart(r);
    if (extra[0].tagName === "BUTTON") buttons.push(extra.shift());
  }
  if (r.status === "CHECKED_IN" && new Date(r.start_time).getTime() <= Date.now()) {
    buttons.push(action("Check out", async () => {
      await request("POST", `/reservations/${r.id}/checkout`);
      announce(`Checked out of seat ${r.seat.label}.`);
    }));
  }
  if (r.status === "CONFIRMED" || r.status === "HELD") {
    buttons.push(action("Cancel", async () => {
      await request("DELETE", `/reservations/${r.id}`);
      announce(`Cancelled seat ${r.seat.label}.`);
    }, "button danger"));
  }
  if (ACTIVE.includes(r.status)) {
    buttons.push(h("a", { class: "button", href: `/reservations/${r.id}/ics`, download: `reservation-${r.id}.ics` }, "Add to calendar"));
  }
  return h("li", { class: "card", dataset: { reservationId: r.id, status: r.status } },
    h("h3", {}, `Seat ${r.seat.label} · ${r.seat.branch}`),
    h("p", { class: "meta" }, timeEl(r.start_time, dayTime(r.start_time)), " to ", timeEl(r.end_time, hhmm(r.end_time)), ` · ${r.seat.area}`),
    h("p", {}, h("span", { class: "status" }, STATUS_WORDS[r.status] || r.status),
      r.cancel_reason ? ` ${r.cancel_reason}` : ""),
    ...extra,
    buttons.length ? h("div", { class: "actions" }, buttons) : null,
  );
}

function fill(list, items, empty) {
  list.replaceChildren(...(items.length ? items.map(item) : [h("li", { class: "empty" }, empty)]));
  list.setAttribute("aria-busy", "false");
}

async function load() {
  try {
    const [up, past] = await Promise.all([
      request("GET", "/reservations", null, { query: { scope: "upcoming", limit: 100 } }),
      request("GET", "/reservations", null, { query: { scope: "history", limit: 100 } }),
    ]);
    // Upcoming shows what still holds a seat; a cancelled future one belongs with the past.
    const active = (r) => ACTIVE.includes(r.status);
    fill(upcoming, up.items.filter(active), "Nothing booked. Find a seat under Branches.");
    fill(history, [...up.items.filter((r) => !active(r)), ...past.items], "No past reservations in the last 30 days.");
    clearError(pageError);
  } catch (err) {
    if (err.status === 401) return requireSignIn();
    showError(pageError, err);
  }
}

if (!(await me())) requireSignIn();
else {
  await load();
  document.addEventListener("dlsms:changed", load);
  document.addEventListener("dlsms:notification", load);
}
