// /app/branches: GET /branches, each with its free / reserved / occupied counts, whether it
// is open now and until when (open_now, next_change_at, on the branch's clock), today's
// hours, closures ahead and the week (GET /branches/{id}/hours). Live from /seats/stream
// (any seat event re-reads the counts; so does every (re)connection); a branch's hours
// are read again when it opens or closes.
import { request } from "/static/js/api.js";
import { h, showError, clearError } from "/static/js/ui.js";
import { hoursBlock, openState, weekOf } from "/static/js/hours.js";

const list = document.getElementById("branches");
const errorBox = document.getElementById("page-error");

const hoursCache = new Map(); // branch id -> {at, key, hours}
const openWeeks = new Set(); // branch ids whose week is unfolded (kept across re-renders)

async function hoursOf(b) {
  // Read again once the branch opens or closes, or after ten minutes.
  const key = `${b.open_now}|${b.next_change_at}`;
  const cached = hoursCache.get(b.id);
  if (cached && cached.key === key && Date.now() - cached.at < 600000) return cached.hours;
  try {
    const hours = await weekOf(b.id);
    hoursCache.set(b.id, { at: Date.now(), key, hours });
    return hours;
  } catch {
    return null;
  }
}

function card(b, hours) {
  const block = hours ? hoursBlock(hours, `branch-${b.id}`) : null;
  const week = block?.querySelector("details");
  if (week) {
    week.open = openWeeks.has(b.id);
    week.addEventListener("toggle", () => (week.open ? openWeeks.add(b.id) : openWeeks.delete(b.id)));
  }
  return h("li", { class: "card", dataset: { branch: b.name, branchId: b.id } },
    h("h2", {}, h("a", { href: `/app/branches/${encodeURIComponent(b.name)}` }, b.name)),
    openState(b),
    block,
    h("ul", { class: "counts" },
      h("li", { dataset: { count: "free" } }, `✓ ${b.available_now} free`),
      h("li", { dataset: { count: "reserved" } }, `● ${b.reserved_now} reserved`),
      h("li", { dataset: { count: "occupied" } }, `■ ${b.occupied_now} occupied`),
      h("li", {}, `${b.total_seats} seats`),
    ),
    h("p", { class: "meta" }, `${b.with_power} with power, ${b.with_monitor} with a monitor` +
      (b.areas.length ? ` · Areas: ${b.areas.join(", ")}` : "")),
  );
}

async function render(branches) {
  if (!branches.length) {
    list.replaceChildren(h("li", { class: "empty" }, "No branches yet."));
    return;
  }
  const hours = await Promise.all(branches.map(hoursOf));
  const focused = document.activeElement;
  const focusBranch = list.contains(focused) ? focused.closest("[data-branch-id]")?.dataset.branchId : null;
  const focusSummary = focused?.tagName === "SUMMARY";
  list.replaceChildren(...branches.map((b, i) => card(b, hours[i])));
  // Keep keyboard focus on the same branch across a live re-render.
  if (focusBranch) {
    const li = list.querySelector(`[data-branch-id="${focusBranch}"]`);
    (focusSummary ? li?.querySelector("summary") : li?.querySelector("h2 a"))?.focus();
  }
}

let pending = null;
let timer = null;
async function load() {
  try {
    const branches = await request("GET", "/branches");
    await render(branches);
    clearError(errorBox);
    // Re-read when the next branch opens or closes, so "Open now" never goes stale.
    const next = branches.map((b) => b.next_change_at && new Date(b.next_change_at).getTime()).filter(Boolean);
    clearTimeout(timer);
    if (next.length) timer = setTimeout(soon, Math.min(Math.max(Math.min(...next) - Date.now() + 1000, 1000), 2 ** 31 - 1));
  } catch (err) {
    showError(errorBox, err);
  } finally {
    list.setAttribute("aria-busy", "false");
  }
}

function soon() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    load();
  }, 250);
}

const stream = new EventSource("/seats/stream");
stream.addEventListener("open", soon);
stream.addEventListener("seat.availability", soon);
stream.addEventListener("seats.changed", soon);
load();
