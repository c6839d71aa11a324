// /app/staff/audit: GET /admin/audit, newest first, 25 a page; each row says which fields
// changed (before -> after) rather than dumping the rows.
import { request, dayTime } from "/static/js/api.js";
import { h, timeEl, showError, clearError } from "/static/js/ui.js";
import { staffOnly } from "/static/js/staff.js";

const $ = (id) => document.getElementById(id);
const tbody = $("audit").tBodies[0];
const pageError = $("page-error");
const PAGE = 25;
const ACTIONS = {
  "branch.create": "Branch added",
  "seat.create": "Seat added",
  "seat.update": "Seat changed",
  "reservation.checkin": "Checked in at the desk",
};
// Fields a person reads; ids and timestamps of the row itself are noise here.
const SKIP = new Set(["id", "branch_id", "created_at", "updated_at"]);

let offset = Number(new URLSearchParams(location.search).get("offset")) || 0;

function show(value) {
  if (value === null || value === undefined) return "none";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return dayTime(value);
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function changes(before, after) {
  const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])].filter((k) => !SKIP.has(k));
  const items = [];
  for (const key of keys) {
    const old = before ? before[key] : undefined;
    const now = after ? after[key] : undefined;
    if (before && JSON.stringify(old) === JSON.stringify(now)) continue;
    items.push(h("li", {}, before ? `${key}: ${show(old)} → ${show(now)}` : `${key}: ${show(now)}`));
  }
  return items.length ? h("ul", { class: "changes" }, ...items) : h("span", { class: "meta" }, "no field changed");
}

function what(entry) {
  const row = entry.after || entry.before || {};
  const name = row.label ? ` ${row.label}` : row.name ? ` ${row.name}` : "";
  const where = row.branch && entry.entity === "seat" ? ` (${row.branch})` : "";
  return `${entry.entity}${name}${where} #${entry.entity_id}`;
}

async function load() {
  try {
    const page = await request("GET", "/admin/audit", null, { query: { limit: PAGE, offset } });
    tbody.replaceChildren(
      ...(page.items.length
        ? page.items.map((e) =>
            h("tr", { dataset: { auditId: e.id, action: e.action } },
              h("td", {}, timeEl(e.created_at, dayTime(e.created_at))),
              h("td", {}, `Admin #${e.actor_id}`),
              h("td", {}, ACTIONS[e.action] || e.action),
              h("td", {}, what(e)),
              h("td", {}, changes(e.before, e.after)),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No staff changes yet."))]),
    );
    tbody.setAttribute("aria-busy", "false");
    const first = page.total ? offset + 1 : 0;
    $("page-info").textContent = `${first}–${offset + page.items.length} of ${page.total}`;
    $("newer").disabled = offset === 0;
    $("older").disabled = offset + page.items.length >= page.total;
    clearError(pageError);
  } catch (err) {
    showError(pageError, err);
  }
}

function go(to) {
  offset = Math.max(0, to);
  const url = new URL(location.href);
  if (offset) url.searchParams.set("offset", offset);
  else url.searchParams.delete("offset");
  history.replaceState(null, "", url);
  load();
}

$("newer").addEventListener("click", () => go(offset - PAGE));
$("older").addEventListener("click", () => go(offset + PAGE));

async function start() {
  if (!(await staffOnly())) return;
  await load();
}

start();
