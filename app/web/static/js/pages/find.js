// /app/find: "Find me a seat". Asks a duration (and, optionally, a branch, power, a
// monitor), calls GET /seats/suggest (from now; the session cookie, when there is one, lets
// the student's habits rank), lists the suggestions with their reasons, each with Book
// (POST /reservations with one Idempotency-Key per attempt, as the seat map does). When no
// seat is free now for all of it, the answer's items start later today: said first.
// Times are on each branch's clock (hours.js).
import { request, me, requireSignIn } from "/static/js/api.js";
import { h, announce, showError, clearError, showOk, busy } from "/static/js/ui.js";
import { showFieldErrors, clearFieldErrors } from "/static/js/forms.js";
import { tzTime, whenText } from "/static/js/hours.js";

const $ = (id) => document.getElementById(id);
const form = $("find");
const pageError = $("page-error");
const list = $("suggestions");

let zones = new Map(); // branch name -> IANA zone

function zoneOf(branch) {
  return zones.get(branch) || Intl.DateTimeFormat().resolvedOptions().timeZone;
}

function durationText(minutes) {
  if (minutes < 60) return `${minutes} minutes`;
  const hours = minutes / 60;
  return hours === 1 ? "1 hour" : `${hours} hours`;
}

function amenities(seat) {
  const parts = [];
  if (seat.has_power) parts.push("⚡ power");
  if (seat.has_monitor) parts.push("▭ monitor");
  return parts.length ? parts.join(", ") : "no power or monitor";
}

function suggestion(item, askedAt) {
  const { seat } = item;
  const tz = zoneOf(seat.branch);
  const later = new Date(item.start_time).getTime() > askedAt + 60000;
  const when = later
    ? ["From ", h("time", { datetime: item.start_time }, whenText(item.start_time, tz).replace(/^at /, "")), " to ", h("time", { datetime: item.end_time }, tzTime(item.end_time, tz))]
    : ["Now to ", h("time", { datetime: item.end_time }, tzTime(item.end_time, tz))];
  const freeAfter = item.free_until
    ? ["Free until ", h("time", { datetime: item.free_until }, whenText(item.free_until, tz).replace(/^at /, "")), " if you need longer."]
    : null;
  const error = h("div", { class: "error", role: "alert", hidden: true });
  const ok = h("div", { class: "ok", role: "status", hidden: true });
  const book = h("button", { type: "button", class: "button primary" }, "Book", h("span", { class: "visually-hidden" }, ` seat ${seat.label}, ${seat.branch}`));
  let key = crypto.randomUUID();
  book.addEventListener("click", () =>
    busy(book, async () => {
      if (!(await me())) {
        requireSignIn();
        return false;
      }
      clearError(error);
      try {
        const r = await request("POST", "/reservations",
          { seat_id: seat.id, start_time: item.start_time, end_time: item.end_time },
          { idempotencyKey: key });
        book.hidden = true;
        showOk(ok, `Booked seat ${r.seat.label} at ${r.seat.branch}, ${tzTime(r.start_time, tz)} to ${tzTime(r.end_time, tz)}. `,
          h("a", { href: "/app/reservations" }, "See my reservations"));
        announce(`Booked seat ${r.seat.label}.`);
        return true;
      } catch (err) {
        key = crypto.randomUUID(); // a new attempt after a refusal
        showError(error, err, err.code === "seat_conflict" ? [h("p", {}, "Search again for the next best seat.")] : []);
        return false;
      }
    }, (done) => done === true),
  );
  return h("li", { class: "card suggestion", dataset: { seatId: seat.id, later: String(later) } },
    h("h3", {}, `Seat ${seat.label} · ${seat.branch}`),
    h("p", { class: "meta" }, `${seat.area} · ${amenities(seat)}`),
    h("p", { class: "when" }, h("strong", {}, ...when), later ? h("span", { class: "meta" }, ` (${tz} time, later than you asked)`) : ` (${tz} time)`),
    freeAfter ? h("p", { class: "meta" }, ...freeAfter) : null,
    item.reasons.length ? h("ul", { class: "reasons", "aria-label": `Why seat ${seat.label}` }, item.reasons.map((r) => h("li", {}, r))) : null,
    error, ok,
    h("div", { class: "actions" }, book),
  );
}

async function find() {
  clearError(pageError);
  clearFieldErrors(form);
  const minutes = Number(form.duration.value);
  const askedAt = Date.now();
  const query = {
    duration_minutes: minutes,
    branch: form.branch.value || null,
    has_power: form.power.checked ? true : null,
    has_monitor: form.monitor.checked ? true : null,
    limit: 5,
  };
  const url = new URL(location.href);
  url.search = "";
  for (const [k, v] of Object.entries({ duration: minutes, branch: query.branch, power: form.power.checked ? 1 : null, monitor: form.monitor.checked ? 1 : null })) {
    if (v !== null) url.searchParams.set(k, String(v));
  }
  history.replaceState(null, "", url);
  list.setAttribute("aria-busy", "true");
  try {
    const answer = await request("GET", "/seats/suggest", null, { query });
    const items = answer.items;
    const later = items.length > 0 && items.every((i) => new Date(i.start_time).getTime() > askedAt + 60000);
    const note = $("later-note");
    if (!items.length) {
      note.replaceChildren(h("p", {}, h("span", { "aria-hidden": "true" }, "⚠ "),
        `No seat is free for ${durationText(minutes)} today${query.branch ? ` at ${query.branch}` : ""}. Try a shorter time${query.branch ? " or any branch" : ""}.`));
      note.hidden = false;
    } else if (later) {
      const first = items[0];
      note.replaceChildren(h("p", {}, h("span", { "aria-hidden": "true" }, "⚠ "),
        `Nothing is free right now for ${durationText(minutes)}. The earliest is from ${whenText(first.start_time, zoneOf(first.seat.branch)).replace(/^at /, "")}; the seats below free up later today.`));
      note.hidden = false;
    } else {
      note.hidden = true;
    }
    list.replaceChildren(...items.map((i) => suggestion(i, askedAt)));
    $("results-summary").textContent = items.length
      ? `${items.length === 1 ? "1 seat" : `${items.length} seats`} for ${durationText(minutes)}${later ? ", later today" : ", from now"}.`
      : "No suggestions.";
    $("results").hidden = false;
    $("results-title").focus();
  } catch (err) {
    showFieldErrors(form, err, pageError);
  } finally {
    list.setAttribute("aria-busy", "false");
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("find-submit"), find);
});

async function start() {
  const params = new URLSearchParams(location.search);
  try {
    const branches = (await request("GET", "/branches")).sort((a, b) => a.name.localeCompare(b.name));
    zones = new Map(branches.map((b) => [b.name, b.timezone]));
    form.branch.append(...branches.map((b) => h("option", { value: b.name }, b.name)));
  } catch (err) {
    showError(pageError, err);
  }
  if (params.has("duration")) form.duration.value = params.get("duration");
  if (params.has("branch")) form.branch.value = params.get("branch");
  form.power.checked = params.get("power") === "1";
  form.monitor.checked = params.get("monitor") === "1";
  // Back from signing in (or a shared link): show the suggestions again.
  if (params.has("duration")) busy($("find-submit"), find);
}

start();
