// /app/branches/{name}: the seat map. Seats grouped by area; each a button whose name holds
// its label and state word (free, held, booked, occupied, maintenance, closed) for the
// chosen interval (GET /seats with start_time/end_time). Live: /seats/stream?branch= events,
// and every (re)connection, re-read the listing (seat events carry no replay).
// Opening a seat shows its busy times that day (GET /seats/{id}?date=) and Book (one
// Idempotency-Key per attempt) or Join waitlist.

import { request, me, hhmm, dayTime, requireSignIn, amount } from "/static/js/api.js";
import { h, announce, showError, clearError, showOk, busy, dateValue, timeValue, localDate } from "/static/js/ui.js";
import { dateLabel, hoursBlock, openState, tzDate, weekOf } from "/static/js/hours.js";

const main = document.getElementById("main");
const branch = main.dataset.branch;
const form = document.getElementById("filters");
const mapEl = document.getElementById("map");
const pageError = document.getElementById("page-error");
const summary = document.getElementById("interval-summary");
const dialog = document.getElementById("seat-dialog");
const dialogTitle = document.getElementById("seat-dialog-title");
const dialogInfo = document.getElementById("seat-dialog-info");
const dialogBusy = document.getElementById("seat-dialog-busy");
const dialogInterval = document.getElementById("seat-dialog-interval");
const dialogError = document.getElementById("seat-dialog-error");
const dialogOk = document.getElementById("seat-dialog-ok");
const bookButton = document.getElementById("book");
const joinButton = document.getElementById("join-seat");

const ICONS = { free: "✓", held: "◔", booked: "●", occupied: "■", maintenance: "⚒", closed: "✕", outside_hours: "☾" };
// A state word as people read it ("outside_hours": the branch is not open for all of the
// time asked).
const stateText = (state) => state.replaceAll("_", " ");

let seats = [];
let open = null; // { seat, start, end, key }

// Defaults: today, from now (to the minute), for 2 hours.
const now = new Date();
form.date.value = dateValue(now);
form.start.value = timeValue(now);

function interval() {
  let start = localDate(form.date.value, form.start.value);
  const minutes = Number(form.duration.value);
  // A start in the past (the page stayed open) means "from now".
  if (start.getTime() < Date.now()) start = new Date(Math.floor(Date.now() / 60000) * 60000);
  const end = new Date(start.getTime() + minutes * 60000);
  return { start, end };
}

function amenities(seat) {
  const parts = [];
  if (seat.has_power) parts.push("⚡ power");
  if (seat.has_monitor) parts.push("▭ monitor");
  return parts;
}

function seatButton(seat) {
  const extras = amenities(seat);
  const name = `${seat.label}, ${stateText(seat.state)}${extras.length ? `, ${extras.map((e) => e.split(" ")[1]).join(", ")}` : ""}`;
  return h("button", {
      type: "button", class: "seat", "aria-label": name, "aria-haspopup": "dialog",
      dataset: { seatId: seat.id, state: seat.state },
      on: { click: () => openSeat(seat) },
    },
    h("span", { class: "label" }, seat.label),
    h("span", { class: "state" }, h("span", { "aria-hidden": "true" }, `${ICONS[seat.state] || ""} `), stateText(seat.state)),
    h("span", { class: "amenities" }, extras.length ? extras.map((e) => h("span", {}, e, " ")) : "no power or monitor"),
  );
}

function render() {
  const areaFilter = form.area.value;
  const visible = seats.filter((s) =>
    (!areaFilter || s.area === areaFilter) &&
    (!form.power.checked || s.has_power) &&
    (!form.monitor.checked || s.has_monitor) &&
    (!form.free_only.checked || s.state === "free"));
  const byArea = new Map();
  for (const seat of visible) {
    if (!byArea.has(seat.area)) byArea.set(seat.area, []);
    byArea.get(seat.area).push(seat);
  }
  const focused = document.activeElement?.dataset?.seatId;
  if (!visible.length) {
    mapEl.replaceChildren(h("p", { class: "empty" }, "No seat matches these filters."));
  } else {
    mapEl.replaceChildren(
      ...[...byArea.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([area, list], i) =>
        h("section", { class: "area", "aria-labelledby": `area-${i}` },
          h("h2", { id: `area-${i}` }, `${area} `, h("span", { class: "meta" }, `(${list.filter((s) => s.state === "free").length} of ${list.length} free)`)),
          h("ul", { class: "seats" }, list.map((s) => h("li", {}, seatButton(s)))),
        ),
      ),
    );
  }
  // Keep keyboard focus on the same seat across a live re-render.
  if (focused) mapEl.querySelector(`[data-seat-id="${focused}"]`)?.focus();
  mapEl.setAttribute("aria-busy", "false");
}

function fillAreas() {
  const areas = [...new Set(seats.map((s) => s.area))].sort();
  const current = form.area.value;
  form.area.replaceChildren(h("option", { value: "" }, "All areas"), ...areas.map((a) => h("option", { value: a }, a)));
  form.area.value = areas.includes(current) ? current : "";
}

let loading = null;
async function load() {
  const { start, end } = interval();
  summary.textContent = `Showing seats for ${dayTime(start.toISOString())} to ${hhmm(end.toISOString())}.`;
  const ticket = {};
  loading = ticket;
  try {
    const page = await request("GET", "/seats", null, {
      query: { branch, start_time: start.toISOString(), end_time: end.toISOString(), limit: 500 },
    });
    if (loading !== ticket) return; // a newer load is under way
    seats = page.items;
    clearError(pageError);
    if (!seats.length) {
      mapEl.replaceChildren(h("p", { class: "empty" }, "This branch has no seats (or does not exist)."));
      mapEl.setAttribute("aria-busy", "false");
      return;
    }
    fillAreas();
    render();
  } catch (err) {
    showError(pageError, err);
  }
}

let pending = null;
function loadSoon() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    load();
  }, 200);
}

async function openSeat(seat) {
  const { start, end } = interval();
  open = { seat, start, end, key: crypto.randomUUID() };
  dialogTitle.textContent = `Seat ${seat.label}`;
  dialogInfo.textContent = `${seat.area} · ${amenities(seat).join(", ") || "no power or monitor"} · ${stateText(seat.state)}`;
  dialogInterval.textContent = `${dayTime(start.toISOString())} to ${hhmm(end.toISOString())}`;
  clearError(dialogError);
  dialogOk.hidden = true;
  const free = seat.state === "free";
  const out = seat.state === "maintenance" || seat.state === "closed";
  const shut = seat.state === "outside_hours";
  bookButton.hidden = !free;
  bookButton.disabled = false;
  joinButton.hidden = free || out || shut;
  joinButton.disabled = false;
  if (out) showError(dialogError, new Error(`This seat is out of service (${seat.state}).`));
  if (shut) showError(dialogError, new Error(`${branch} is not open for all of this time. Choose a time within the opening hours shown above.`));
  dialogBusy.replaceChildren(h("li", {}, "Loading…"));
  if (!dialog.open) dialog.showModal();
  try {
    const detail = await request("GET", `/seats/${seat.id}`, null, { query: { date: form.date.value } });
    dialogBusy.replaceChildren(
      ...(detail.busy.length
        ? detail.busy.map((b) => h("li", {}, `${hhmm(b.start_time)} to ${hhmm(b.end_time)}`))
        : [h("li", {}, "Free all day")]),
    );
  } catch (err) {
    dialogBusy.replaceChildren(h("li", {}, err.message));
  }
}

async function needUser() {
  if (await me()) return true;
  requireSignIn();
  return false;
}

bookButton.addEventListener("click", () =>
  busy(bookButton, async () => {
    if (!open || !(await needUser())) return false;
    clearError(dialogError);
    try {
      const r = await request("POST", "/reservations",
        { seat_id: open.seat.id, start_time: open.start.toISOString(), end_time: open.end.toISOString() },
        { idempotencyKey: open.key });
      bookButton.hidden = true;
      showOk(dialogOk, `Booked seat ${r.seat.label}, ${dayTime(r.start_time)} to ${hhmm(r.end_time)}. `,
        h("a", { href: "/app/reservations" }, "See my reservations"));
      announce(`Booked seat ${r.seat.label}.`);
      load();
      loadQuota();
      return true;
    } catch (err) {
      open.key = crypto.randomUUID(); // a new attempt after a refusal
      showError(dialogError, err);
      if (err.code === "outside_opening_hours") {
        // The detail names the day's openings; the hours above and the map are read again.
        bookButton.hidden = true;
        load();
        loadHours();
      }
      if (err.code === "quota_exceeded") loadQuota();
      if (err.code === "seat_conflict") {
        bookButton.hidden = true;
        joinButton.hidden = false;
        joinButton.focus();
        load();
      }
      return false;
    }
  }, (done) => done === true),
);

joinButton.addEventListener("click", () =>
  busy(joinButton, async () => {
    if (!open || !(await needUser())) return false;
    clearError(dialogError);
    try {
      const entry = await request("POST", "/waitlist",
        { seat_id: open.seat.id, start_time: open.start.toISOString(), end_time: open.end.toISOString() });
      joinButton.hidden = true;
      showOk(dialogOk, `You're number ${entry.position} in line for seat ${open.seat.label}. We'll offer it here as soon as it frees up. `,
        h("a", { href: "/app/waitlist" }, "See my waitlist"));
      announce(`Joined the waitlist, number ${entry.position}.`);
      return true;
    } catch (err) {
      showError(dialogError, err);
      if (err.code === "slot_available") {
        joinButton.hidden = true;
        bookButton.hidden = false;
        bookButton.disabled = false;
      }
      return false;
    }
  }, (done) => done === true),
);

document.getElementById("close-dialog").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => {
  const id = open?.seat.id;
  open = null;
  if (id) mapEl.querySelector(`[data-seat-id="${id}"]`)?.focus();
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  mapEl.setAttribute("aria-busy", "true");
  load();
});
for (const control of [form.area, form.power, form.monitor, form.free_only]) control.addEventListener("change", render);
for (const control of [form.date, form.start, form.duration]) control.addEventListener("change", loadSoon);
form.date.addEventListener("change", () => loadQuota());
document.addEventListener("dlsms:changed", loadSoon);

// The branch's hours (GET /branches for its id and open state, then its week), read again
// when it opens or closes.
let hoursTimer = null;
let branchId = null;
let branchZone = null;

/** The student's use of this branch's quotas (GET /branches/{id}/quota), when it has any. */
async function loadQuota() {
  const el = document.getElementById("quota-use");
  if (!branchId || !(await me())) return;
  let q;
  try {
    q = await request("GET", `/branches/${branchId}/quota`, null, { query: { date: form.date.value || null } });
  } catch {
    el.hidden = true; // no quota endpoint, or signed out meanwhile: nothing to say
    return;
  }
  const parts = [];
  const day = q.bookings_per_day;
  const week = q.hours_per_week;
  // The day the map shows: "today" when it is today at the branch.
  const today = branchZone && q.date === tzDate(new Date().toISOString(), branchZone);
  const dayWords = today ? "today" : `on ${dateLabel(q.date)}`;
  const weekWords = today ? "this week" : "that week";
  if (day && day.limit !== null) parts.push(`${amount(day.used)} of ${amount(day.limit)} ${Number(day.limit) === 1 ? "booking" : "bookings"} ${dayWords}`);
  if (week && week.limit !== null) parts.push(`${amount(week.used)} of ${amount(week.limit)} ${Number(week.limit) === 1 ? "hour" : "hours"} ${weekWords}`);
  el.replaceChildren(...(parts.length ? [h("span", { class: "legend" }, "Your use here: "), parts.join(" · "), "."] : []));
  el.hidden = !parts.length;
}

async function loadHours() {
  const body = document.getElementById("hours-body");
  try {
    const b = (await request("GET", "/branches")).find((x) => x.name === branch);
    if (!b) {
      body.replaceChildren(h("p", { class: "meta" }, "No such branch."));
      return;
    }
    branchId = b.id;
    branchZone = b.timezone;
    loadQuota();
    const wasOpen = body.querySelector("details")?.open;
    const block = hoursBlock(await weekOf(b.id), "map");
    if (wasOpen) block.querySelector("details").open = true;
    body.replaceChildren(openState(b), block);
    clearTimeout(hoursTimer);
    if (b.next_change_at) {
      const wait = new Date(b.next_change_at).getTime() - Date.now() + 1000;
      hoursTimer = setTimeout(loadHours, Math.min(Math.max(wait, 1000), 2 ** 31 - 1));
    }
  } catch (err) {
    body.replaceChildren(h("p", { class: "meta" }, `Opening hours unavailable: ${err.message}`));
  }
}
loadHours();

const stream = new EventSource(`/seats/stream?branch=${encodeURIComponent(branch)}`);
stream.addEventListener("open", loadSoon);
stream.addEventListener("seat.availability", loadSoon);
// A change for some other time (an offer claimed for 14:00 while the map shows 14:00):
// the branch's listing changed, so read it again.
stream.addEventListener("seats.changed", loadSoon);
load();
