// Branch hours as people read them, always on the branch's clock (its IANA `timezone`),
// whatever the browser's zone. Shared by the branches page, the seat map and staff pages.
//
//   import { openState, hoursBlock, tzTime } from "/static/js/hours.js";
//   card.append(openState(branch));                 // GET /branches item
//   card.append(hoursBlock(await weekOf(branch.id), branch.timezone));

import { request } from "/static/js/api.js";
import { h, timeEl } from "/static/js/ui.js";

const formatters = new Map();
function fmt(tz, options) {
  const key = `${tz}|${JSON.stringify(options)}`;
  if (!formatters.has(key)) formatters.set(key, new Intl.DateTimeFormat("en-GB", { timeZone: tz, ...options }));
  return formatters.get(key);
}

/** "08:05" on the branch's clock. */
export function tzTime(iso, tz) {
  return fmt(tz, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(iso));
}

/** "2026-12-07": the local date of an instant at the branch. */
export function tzDate(iso, tz) {
  const parts = Object.fromEntries(
    fmt(tz, { year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/** "Mon 7 Dec" for a local date "2026-12-07" (a calendar date: no zone involved). */
export function dateLabel(ymd) {
  return fmt("UTC", { weekday: "short", day: "numeric", month: "short" }).format(new Date(`${ymd}T12:00:00Z`));
}

/** "Monday" for a local date "2026-12-07". */
export function weekdayName(ymd) {
  return fmt("UTC", { weekday: "long" }).format(new Date(`${ymd}T12:00:00Z`));
}

/** "at 22:00", "tomorrow at 08:00" or "Mon 7 Dec at 08:00", on the branch's clock. */
export function whenText(iso, tz, nowIso = new Date().toISOString()) {
  const day = tzDate(iso, tz);
  const today = tzDate(nowIso, tz);
  const tomorrow = tzDate(new Date(new Date(nowIso).getTime() + 86400000).toISOString(), tz);
  const time = tzTime(iso, tz);
  if (day === today) return `at ${time}`;
  if (day === tomorrow) return `tomorrow at ${time}`;
  return `${dateLabel(day)} at ${time}`;
}

/** One opening of a day as "08:00–22:00" (an end at the next midnight reads 24:00). */
export function spanText(interval, tz) {
  const start = tzTime(interval.start_time, tz);
  let end = tzTime(interval.end_time, tz);
  if (end === "00:00" && tzDate(interval.end_time, tz) !== tzDate(interval.start_time, tz)) end = "24:00";
  return `${start}–${end}`;
}

/** A day of GET /branches/{id}/hours as words: "08:00–12:00, 13:00–22:00", "Closed". */
export function dayText(day, tz) {
  const open = day.open.length ? day.open.map((i) => spanText(i, tz)).join(", ") : "Closed";
  return day.closure ? `${open} – ${day.closure.reason}` : open;
}

/**
 * "Open now · closes at 22:00" / "Closed now · opens tomorrow at 08:00" for a GET /branches
 * item, as a <p> whose state is said in words and an icon (not by colour alone).
 */
export function openState(branch) {
  const tz = branch.timezone;
  const next = branch.next_change_at;
  const parts = [];
  if (branch.open_now) {
    parts.push(h("strong", {}, h("span", { "aria-hidden": "true" }, "● "), "Open now"));
    parts.push(next ? [" · closes ", timeEl(next, whenText(next, tz))] : " · around the clock");
  } else {
    parts.push(h("strong", {}, h("span", { "aria-hidden": "true" }, "○ "), "Closed now"));
    parts.push(...(next ? [" · opens ", timeEl(next, whenText(next, tz))] : [" · no opening ahead"]));
  }
  return h("p", { class: `open-state ${branch.open_now ? "is-open" : "is-closed"}`, dataset: { open: String(branch.open_now) } }, ...parts);
}

/** GET /branches/{id}/hours: today and the six days after (or `from`..`to`). */
export function weekOf(branchId, query = null) {
  return request("GET", `/branches/${branchId}/hours`, null, { query });
}

/**
 * Today's hours and closure as a <p>, then the week in a <details> (a list of days). `hours`
 * is a GET /branches/{id}/hours answer; its first day is today at the branch.
 */
export function hoursBlock(hours, idPrefix) {
  const tz = hours.timezone;
  const [today, ...rest] = hours.days;
  const todayLine = h("p", { class: "today-hours" },
    h("span", { class: "legend" }, "Today: "), today ? dayText(today, tz) : "unknown");
  const closureNote = today?.closure
    ? h("p", { class: "closure-note" }, h("span", { "aria-hidden": "true" }, "⚠ "), `Closure today: ${today.closure.reason}`)
    : null;
  const upcoming = rest.filter((d) => d.closure);
  const closureAhead = upcoming.length
    ? h("p", { class: "closure-note" }, h("span", { "aria-hidden": "true" }, "⚠ "),
        `Closures ahead: ${upcoming.map((d) => `${dateLabel(d.date)} – ${d.closure.reason}`).join("; ")}`)
    : null;
  const week = h("details", { class: "week" },
    h("summary", {}, "Hours this week"),
    h("table", { class: "week-table", id: `${idPrefix}-week` },
      h("caption", { class: "visually-hidden" }, `Opening hours, ${tz} time`),
      h("tbody", {},
        hours.days.map((d) =>
          h("tr", { dataset: { date: d.date } },
            h("th", { scope: "row" }, dateLabel(d.date)),
            h("td", {}, d.open.length ? d.open.map((i) => spanText(i, tz)).join(", ") : "Closed",
              d.closure ? h("span", { class: "reason" }, ` – ${d.closure.reason}`) : null),
          ),
        ),
      ),
    ),
    h("p", { class: "meta" }, `Times are local to the branch (${tz}).`),
  );
  return h("div", { class: "hours" }, todayLine, closureNote, closureAhead, week);
}
