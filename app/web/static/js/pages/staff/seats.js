// /app/staff/seats: a branch's seats (GET /seats?branch=), add one (POST /admin/seats),
// edit one (PATCH /admin/seats/{id}), set it to maintenance / closed / active again, saying
// first how many reservations that cancels (GET /admin/reservations: the seat's active ones
// that have not ended, which is what the PATCH cancels), add a branch (POST /admin/branches).
import { request } from "/static/js/api.js";
import { h, busy, showError, clearError, showOk, announce } from "/static/js/ui.js";
import { staffOnly, branchNames, fillSelect } from "/static/js/staff.js";

const $ = (id) => document.getElementById(id);
const branchSelect = $("branch");
const tbody = $("seats");
const pageError = $("page-error");
const editDialog = $("edit-dialog");
const editForm = $("edit-seat");
const statusDialog = $("status-dialog");
const confirmButton = $("status-confirm");

const STATUS_WORDS = { ACTIVE: "✓ Active", MAINTENANCE: "⚒ Maintenance", CLOSED: "✕ Closed" };
// What each status button does, in words for its button, dialog title and announcement.
const TARGETS = {
  ACTIVE: { verb: "Reopen", title: (l) => `Reopen seat ${l}?`, confirm: "Reopen seat", done: (l) => `Seat ${l} is open again.` },
  MAINTENANCE: { verb: "Maintenance", title: (l) => `Put seat ${l} under maintenance?`, confirm: "Set to maintenance", done: (l) => `Seat ${l} is under maintenance.` },
  CLOSED: { verb: "Close", title: (l) => `Close seat ${l}?`, confirm: "Close seat", done: (l) => `Seat ${l} is closed.` },
};
const ACTIVE_STATUSES = ["HELD", "CONFIRMED", "CHECKED_IN"];
// The latest instant the API accepts: "every reservation from now on".
const FOREVER = "8999-01-01T00:00:00Z";

let seats = [];
let editing = null;
let pending = null; // {seat, target} while the status dialog is open

function branch() {
  return branchSelect.value;
}

function withHidden(text, hiddenText) {
  return [text, h("span", { class: "visually-hidden" }, hiddenText)];
}

function actionButton(text, hiddenText, onClick, cls = "button small") {
  return h("button", { type: "button", class: cls, on: { click: onClick } }, ...withHidden(text, hiddenText));
}

function row(seat) {
  const label = seat.label;
  const buttons = [actionButton("Edit", ` seat ${label}`, () => openEdit(seat))];
  for (const target of ["ACTIVE", "MAINTENANCE", "CLOSED"]) {
    if (target === seat.status) continue;
    const hidden = target === "MAINTENANCE" ? ` for seat ${label}` : ` seat ${label}`;
    buttons.push(actionButton(TARGETS[target].verb, hidden, () => openStatus(seat, target), target === "ACTIVE" ? "button small" : "button small danger"));
  }
  // data-label names each cell's column where a phone shows the row as a card (staff.css);
  // the explicit roles keep it a table for screen readers when its display changes.
  return h("tr", { role: "row", dataset: { seatId: seat.id, status: seat.status } },
    h("th", { scope: "row", role: "rowheader" }, label),
    h("td", { role: "cell", dataset: { label: "Area" } }, seat.area),
    h("td", { role: "cell", dataset: { label: "Power" } }, seat.has_power ? "Yes" : "No"),
    h("td", { role: "cell", dataset: { label: "Monitor" } }, seat.has_monitor ? "Yes" : "No"),
    h("td", { role: "cell", dataset: { label: "Status" } }, h("span", { class: `status seat-status ${seat.status.toLowerCase()}` }, STATUS_WORDS[seat.status] || seat.status)),
    h("td", { role: "cell", class: "actions-cell" }, h("div", { class: "row-actions" }, ...buttons)),
  );
}

async function loadSeats() {
  const name = branch();
  $("branch-name").textContent = name || "no branch yet";
  $("codes-link").href = name ? `/app/staff/codes/${encodeURIComponent(name)}` : "/app/staff/seats";
  $("codes-link").hidden = !name;
  if (!name) {
    tbody.replaceChildren(h("tr", { role: "row" }, h("td", { role: "cell", colspan: 6, class: "empty" }, "Add a branch first.")));
    return;
  }
  tbody.setAttribute("aria-busy", "true");
  try {
    const page = await request("GET", "/seats", null, { query: { branch: name, limit: 500 } });
    seats = page.items.sort((a, b) => a.area.localeCompare(b.area) || a.label.localeCompare(b.label, undefined, { numeric: true }));
    tbody.replaceChildren(...(seats.length ? seats.map(row) : [h("tr", { role: "row" }, h("td", { role: "cell", colspan: 6, class: "empty" }, "No seats yet: add one below."))]));
    const areas = [...new Set(seats.map((s) => s.area))];
    $("areas").replaceChildren(...areas.map((a) => h("option", { value: a })));
    clearError(pageError);
  } catch (err) {
    showError(pageError, err);
  } finally {
    tbody.setAttribute("aria-busy", "false");
  }
}

async function loadBranches(wanted) {
  const names = await branchNames();
  fillSelect(branchSelect, names, wanted && names.includes(wanted) ? wanted : names[0] || null);
}

// Edit

function openEdit(seat) {
  editing = seat;
  $("edit-title").textContent = `Edit seat ${seat.label}`;
  editForm.area.value = seat.area;
  editForm.label.value = seat.label;
  editForm.has_power.checked = seat.has_power;
  editForm.has_monitor.checked = seat.has_monitor;
  clearError($("edit-error"));
  editDialog.showModal();
}

editForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const seat = editing;
  const values = {
    area: editForm.area.value.trim(),
    label: editForm.label.value.trim(),
    has_power: editForm.has_power.checked,
    has_monitor: editForm.has_monitor.checked,
  };
  const patch = Object.fromEntries(Object.entries(values).filter(([k, v]) => seat[k] !== v));
  busy($("edit-save"), async () => {
    try {
      if (Object.keys(patch).length) await request("PATCH", `/admin/seats/${seat.id}`, patch);
      editDialog.close();
      announce(`Seat ${values.label} saved.`);
      await loadSeats();
    } catch (err) {
      showError($("edit-error"), err);
    }
  });
});
$("edit-cancel").addEventListener("click", () => editDialog.close());

// Status, with the cost stated first

async function countToCancel(seatId) {
  const now = new Date().toISOString();
  const totals = await Promise.all(
    ACTIVE_STATUSES.map((status) =>
      request("GET", "/admin/reservations", null, {
        query: { seat_id: seatId, status, start_time: now, end_time: FOREVER, limit: 1 },
      }).then((page) => page.total),
    ),
  );
  return totals.reduce((a, b) => a + b, 0);
}

function cancelSentence(n) {
  if (n === 0) return "No reservations will be cancelled.";
  if (n === 1) return "1 reservation will be cancelled. Its owner is told why.";
  return `${n} reservations will be cancelled. Their owners are told why.`;
}

async function openStatus(seat, target) {
  pending = { seat, target };
  const words = TARGETS[target];
  $("status-title").textContent = words.title(seat.label);
  confirmButton.textContent = words.confirm;
  clearError($("status-error"));
  const effect = $("status-effect");
  statusDialog.showModal();
  if (target === "ACTIVE") {
    effect.textContent = "It can be booked again; people on its waitlist are offered it first.";
    confirmButton.disabled = false;
    return;
  }
  if (seat.status !== "ACTIVE") {
    effect.textContent = "It stays out of service; no reservations are affected.";
    confirmButton.disabled = false;
    return;
  }
  effect.textContent = "Counting its reservations…";
  confirmButton.disabled = true;
  try {
    const n = await countToCancel(seat.id);
    if (pending?.seat !== seat) return;
    pending.count = n;
    effect.textContent = cancelSentence(n);
    confirmButton.disabled = false;
  } catch (err) {
    effect.textContent = "";
    showError($("status-error"), err);
  }
}

confirmButton.addEventListener("click", () =>
  busy(confirmButton, async () => {
    const { seat, target, count } = pending;
    try {
      await request("PATCH", `/admin/seats/${seat.id}`, { status: target });
      statusDialog.close();
      const cancelled = count ? ` ${count === 1 ? "1 reservation" : `${count} reservations`} cancelled.` : "";
      announce(TARGETS[target].done(seat.label) + cancelled);
      await loadSeats();
    } catch (err) {
      showError($("status-error"), err);
    }
  }),
);
$("status-cancel").addEventListener("click", () => statusDialog.close());
statusDialog.addEventListener("close", () => {
  pending = null;
});

// Add a seat, add a branch

$("add-seat").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  clearError($("add-seat-error"));
  $("add-seat-ok").hidden = true;
  const body = {
    branch: branch(),
    area: form.area.value.trim(),
    label: form.label.value.trim(),
    has_power: form.has_power.checked,
    has_monitor: form.has_monitor.checked,
  };
  busy(form.querySelector("[type=submit]"), async () => {
    try {
      const seat = await request("POST", "/admin/seats", body);
      showOk($("add-seat-ok"), `Seat ${seat.label} added to ${seat.branch} (${seat.area}).`);
      form.label.value = "";
      await loadSeats();
    } catch (err) {
      showError($("add-seat-error"), err);
    }
  });
});

$("add-branch").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  clearError($("add-branch-error"));
  $("add-branch-ok").hidden = true;
  const body = { name: form.name.value.trim(), timezone: form.timezone.value.trim() };
  busy(form.querySelector("[type=submit]"), async () => {
    try {
      const created = await request("POST", "/admin/branches", body);
      showOk($("add-branch-ok"), `Branch ${created.name} added (${created.timezone}). Add its seats above.`);
      form.name.value = "";
      await loadBranches(created.name);
      branchChanged();
    } catch (err) {
      showError($("add-branch-error"), err);
    }
  });
});

function branchChanged() {
  const url = new URL(location.href);
  url.searchParams.set("branch", branch());
  history.replaceState(null, "", url);
  loadSeats();
}

branchSelect.addEventListener("change", branchChanged);

async function start() {
  if (!(await staffOnly())) return;
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  $("timezones").replaceChildren(...["UTC", ...zones].map((z) => h("option", { value: z })));
  $("branch-timezone").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  try {
    await loadBranches(new URLSearchParams(location.search).get("branch"));
  } catch (err) {
    showError(pageError, err);
  }
  await loadSeats();
}

start();
