// /app/reservations: upcoming and history (GET /reservations?scope=). Check in while the
// window is open (countdown to the deadline), Check out, Cancel, Add to calendar (.ics),
// Extend a CONFIRMED or CHECKED_IN one that has not ended (POST /reservations/{id}/extend,
// one Idempotency-Key per attempt; a refusal is said in the dialog).
import { request, me, requireSignIn, hhmm, dayTime } from "/static/js/api.js";
import { h, timeEl, countdown, busy, showError, clearError, announce, dateValue, timeValue, localDate } from "/static/js/ui.js";
import { clearFieldErrors, showFieldErrors } from "/static/js/forms.js";

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
  if ((r.status === "CONFIRMED" || r.status === "CHECKED_IN") && new Date(r.end_time).getTime() > Date.now()) {
    buttons.push(h("button", { type: "button", class: "button", "aria-haspopup": "dialog", on: { click: () => openExtend(r) } },
      "Extend", h("span", { class: "visually-hidden" }, ` seat ${r.seat.label}`)));
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

// Extend: +30 min, +1 h, or another end time (on the current end's day; a time earlier
// than the current end means the next day).
const extendDialog = document.getElementById("extend-dialog");
const extendForm = document.getElementById("extend-form");
const extendError = document.getElementById("extend-error");
let extending = null; // {r, key, opener}

const EXTEND_MESSAGES = {
  seat_conflict: (err) =>
    err.body.free_at
      ? `Someone else has booked this seat before that time; it is yours until ${hhmm(err.body.free_at)} at most. Choose an earlier end.`
      : "Someone else has booked this seat before that time. Choose an earlier end.",
  user_overlap: () => "You have another reservation before that time. Choose an earlier end.",
};

function newEnd() {
  const end = new Date(extending.r.end_time);
  const choice = extendForm.choice.value;
  if (choice !== "custom") return new Date(end.getTime() + Number(choice) * 60000);
  if (!extendForm.end.value) return null;
  let at = localDate(dateValue(end), extendForm.end.value);
  if (at.getTime() <= end.getTime()) at = new Date(at.getTime() + 86400000);
  return at;
}

function openExtend(r) {
  extending = { r, key: crypto.randomUUID(), opener: document.activeElement };
  const end = new Date(r.end_time);
  document.getElementById("extend-title").textContent = `Extend seat ${r.seat.label}`;
  document.getElementById("extend-now").replaceChildren(
    `${r.seat.branch}. Now ends at `, timeEl(r.end_time, hhmm(r.end_time)), ".");
  document.getElementById("extend-30").textContent = `30 minutes later (until ${hhmm(new Date(end.getTime() + 1800000).toISOString())})`;
  document.getElementById("extend-60").textContent = `1 hour later (until ${hhmm(new Date(end.getTime() + 3600000).toISOString())})`;
  extendForm.reset();
  extendForm.end.value = timeValue(new Date(end.getTime() + 7200000));
  document.getElementById("extend-custom").hidden = true;
  clearFieldErrors(extendForm);
  clearError(extendError);
  extendDialog.showModal();
}

for (const radio of extendForm.querySelectorAll('input[name="choice"]')) {
  radio.addEventListener("change", () => {
    document.getElementById("extend-custom").hidden = extendForm.choice.value !== "custom";
    extending && (extending.key = crypto.randomUUID());
  });
}
extendForm.end.addEventListener("change", () => extending && (extending.key = crypto.randomUUID()));

extendForm.addEventListener("submit", (event) => {
  event.preventDefault();
  busy(document.getElementById("extend-submit"), async () => {
    if (!extending) return;
    clearFieldErrors(extendForm);
    clearError(extendError);
    const end = newEnd();
    if (!end) {
      showFieldErrors(extendForm, { status: 422, body: { detail: [{ loc: ["body", "end_time"], msg: "Choose the new end time." }] } }, extendError);
      return;
    }
    const { r } = extending;
    try {
      const done = await request("POST", `/reservations/${r.id}/extend`, { end_time: end.toISOString() }, { idempotencyKey: extending.key });
      await load();
      extendDialog.close(); // after the cards are drawn again: focus goes to the new one
      announce(`Seat ${done.seat.label} is yours until ${hhmm(done.end_time)}.`);
      const status = document.getElementById("page-status");
      status.replaceChildren(h("p", {}, h("span", { "aria-hidden": "true" }, "✓ "), `Extended: seat ${done.seat.label} is yours until ${hhmm(done.end_time)}.`));
      status.hidden = false;
    } catch (err) {
      extending.key = crypto.randomUUID(); // a new attempt after a refusal
      const special = EXTEND_MESSAGES[err.code];
      if (err.status === 422 && Array.isArray(err.body?.detail)) showFieldErrors(extendForm, err, extendError);
      else showError(extendError, special ? new Error(special(err)) : err);
      if (err.code === "invalid_state") load();
    }
  });
});

document.getElementById("extend-close").addEventListener("click", () => extendDialog.close());
extendDialog.addEventListener("close", () => {
  const opener = extending?.opener;
  const id = extending?.r.id;
  extending = null;
  // The card was drawn again: focus its Extend button, else what opened the dialog.
  const again = document.querySelector(`[data-reservation-id="${id}"] button[aria-haspopup="dialog"]`);
  (again || opener)?.focus?.();
});

if (!(await me())) requireSignIn();
else {
  await load();
  document.addEventListener("dlsms:changed", load);
  document.addEventListener("dlsms:notification", load);
}
