// /app/staff/hours: a branch's weekly hours (GET /branches/{id}; PUT /admin/branches/{id}/hours,
// whose `conflicts` are shown in a dialog that re-submits with cancel_conflicting: true), its
// closures (GET/POST /admin/branches/{id}/closures, DELETE /admin/closures/{id}; what a new
// one cancelled is listed), and the week as students see it (GET /branches/{id}/hours).
// 422 errors land next to their fields (forms.js, by data-loc).
import { request } from "/static/js/api.js";
import { h, busy, showError, clearError, showOk, announce } from "/static/js/ui.js";
import { fillBranchSelect, staffOnly } from "/static/js/staff.js";
import { clearFieldErrors, showFieldErrors } from "/static/js/forms.js";
import { dateLabel, hoursBlock, openState, spanText, tzDate, weekOf } from "/static/js/hours.js";

const $ = (id) => document.getElementById(id);
const DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const DAY_NAMES = Object.fromEntries(DAYS.map((d) => [d, d[0].toUpperCase() + d.slice(1)]));

const branchSelect = $("branch");
const pageError = $("page-error");
const weeklyForm = $("weekly");
const closureForm = $("add-closure");
const dialog = $("conflicts-dialog");

let branch = null; // GET /branches/{id}
let weekly = {}; // day -> [{opens, closes}], what the editor shows
let special = [{ opens: "10:00", closes: "16:00" }];
let pendingWeekly = null; // the template saved with conflicts, re-sent to cancel them

function hidden(text) {
  return h("span", { class: "visually-hidden" }, text);
}

/**
 * An editor for a list of {opens, closes}: rows of two text fields (HH:MM; 24:00 allowed
 * for closes), Remove per row, Add interval. `loc`: the body path (data-loc) of the list;
 * `name`: words for the hidden parts of button names ("Monday").
 */
function spansEditor(container, spans, loc, name, emptyText) {
  const render = (focusIndex = null) => {
    const rows = spans.map((span, i) => {
      const field = (key, label) => {
        const id = `${loc.replaceAll(".", "-")}-${i}-${key}`;
        const input = h("input", {
          id, type: "text", inputmode: "numeric", autocomplete: "off", maxlength: 5, size: 5,
          placeholder: key === "opens" ? "08:00" : "22:00", value: span[key], required: true,
          pattern: "([01][0-9]|2[0-3]):[0-5][0-9]|24:00", dataset: { loc: `${loc}.${i}.${key}` },
          on: { input: (e) => { span[key] = e.target.value.trim(); } },
        });
        return h("div", { class: "field" }, h("label", { for: id }, label, hidden(` (${name}, interval ${i + 1})`)), input);
      };
      return h("li", { class: "span-row" },
        field("opens", "Opens"), field("closes", "Closes"),
        h("button", { type: "button", class: "button small", on: { click: () => { spans.splice(i, 1); render(-1); } } },
          "Remove", hidden(` interval ${i + 1} of ${name}`)),
      );
    });
    const add = h("button", { type: "button", class: "button small", on: { click: () => {
      const last = spans[spans.length - 1];
      spans.push(last ? { opens: last.closes === "24:00" ? "" : last.closes, closes: "" } : { opens: "08:00", closes: "22:00" });
      render(spans.length - 1);
    } } }, "Add interval", hidden(` to ${name}`));
    container.replaceChildren(
      spans.length ? h("ul", { class: "spans" }, rows) : h("p", { class: "meta day-closed" }, h("span", { "aria-hidden": "true" }, "✕ "), emptyText),
      add,
    );
    if (focusIndex === -1) add.focus();
    else if (focusIndex !== null) container.querySelector(`[data-loc="${loc}.${focusIndex}.opens"]`)?.focus();
  };
  render();
}

function renderWeekly() {
  $("days").replaceChildren(
    ...DAYS.map((day) => {
      const body = h("div", { class: "day-body" });
      const set = h("fieldset", { class: "day", dataset: { loc: `weekly.${day}`, day } }, h("legend", { class: "legend" }, DAY_NAMES[day]), body);
      spansEditor(body, weekly[day], `weekly.${day}`, DAY_NAMES[day], "Closed all day");
      return set;
    }),
  );
}

function copyOf(hours) {
  return Object.fromEntries(DAYS.map((d) => [d, (hours[d] || []).map((s) => ({ ...s }))]));
}

function reservationsText(ids) {
  return ids.map((id) => `#${id}`).join(", ");
}

async function refreshState() {
  branch = await request("GET", `/branches/${branch.id}`);
  $("branch-state").replaceChildren(openState(branch), h("p", { class: "meta" }, `Time zone: ${branch.timezone}`));
  for (const el of document.querySelectorAll(".tz")) el.textContent = branch.timezone;
  try {
    $("preview").replaceChildren(hoursBlock(await weekOf(branch.id), "preview"));
  } catch (err) {
    $("preview").replaceChildren(h("p", {}, err.message));
  }
}

async function loadClosures() {
  const list = $("closures");
  list.setAttribute("aria-busy", "true");
  const today = tzDate(new Date().toISOString(), branch.timezone);
  const items = await request("GET", `/admin/branches/${branch.id}/closures`, null, { query: { from: today } });
  list.replaceChildren(
    ...(items.length
      ? items.map((c) => {
          const days = c.date_from === c.date_to ? dateLabel(c.date_from) : `${dateLabel(c.date_from)} to ${dateLabel(c.date_to)}`;
          const what = c.open ? `Special hours ${c.open.map((s) => `${s.opens}–${s.closes}`).join(", ")}` : "Closed all day";
          const remove = h("button", { type: "button", class: "button small danger" }, "Delete", hidden(` closure ${c.reason}, ${days}`));
          remove.addEventListener("click", () =>
            busy(remove, async () => {
              try {
                await request("DELETE", `/admin/closures/${c.id}`);
                showOk($("closures-ok"), `Closure “${c.reason}” deleted; the weekly hours apply on ${days} again.`);
                announce(`Closure ${c.reason} deleted.`);
                await Promise.all([loadClosures(), refreshState()]);
                $("closure-list-title").focus?.();
              } catch (err) {
                showError(pageError, err);
              }
            }),
          );
          return h("li", { class: "card closure", dataset: { closureId: c.id } },
            h("h4", {}, c.reason),
            h("p", { class: "meta" }, `${days} · ${what}`),
            h("div", { class: "actions" }, remove));
        })
      : [h("li", { class: "empty" }, "No closures ahead.")]),
  );
  list.setAttribute("aria-busy", "false");
}

async function loadBranch() {
  const id = Number(branchSelect.value);
  clearError(pageError);
  for (const box of ["weekly-error", "weekly-ok", "closure-error", "closure-ok", "closures-ok"]) $(box).hidden = true;
  clearFieldErrors(weeklyForm);
  clearFieldErrors(closureForm);
  if (!id) return;
  const url = new URL(location.href);
  url.searchParams.set("branch", branchSelect.selectedOptions[0].textContent);
  history.replaceState(null, "", url);
  try {
    branch = { id };
    await refreshState();
    weekly = copyOf(branch.hours);
    renderWeekly();
    await loadClosures();
  } catch (err) {
    showError(pageError, err);
  }
}

/** "A1 (Quiet) · Tue 1 Dec 20:00–23:00 · confirmed · #12", on the branch's clock. */
function conflictText(r) {
  const day = dateLabel(tzDate(r.start_time, branch.timezone));
  const when = `${day} ${spanText(r, branch.timezone)}`;
  return `${r.seat.label} (${r.seat.area}) · ${when} · ${r.status.toLowerCase().replace("_", " ")} · #${r.id}`;
}

async function putHours(body) {
  return request("PUT", `/admin/branches/${branch.id}/hours`, body);
}

weeklyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const button = $("save-hours");
  busy(button, async () => {
    clearError($("weekly-error"));
    $("weekly-ok").hidden = true;
    clearFieldErrors(weeklyForm);
    const sent = copyOf(weekly);
    try {
      const answer = await putHours({ weekly: sent, cancel_conflicting: false });
      weekly = copyOf(answer.hours);
      renderWeekly();
      await refreshState();
      if (answer.conflicts.length) {
        pendingWeekly = sent;
        const n = answer.conflicts.length;
        showOk($("weekly-ok"), `Hours saved. ${n === 1 ? "One reservation" : `${n} reservations`} no longer fit${n === 1 ? "s" : ""} them and ${n === 1 ? "is" : "are"} kept for now.`);
        $("conflicts-text").textContent = `The hours are saved. ${n === 1 ? "This active reservation lies" : `These ${n} active reservations lie`} outside them. Cancel ${n === 1 ? "it" : "them"} (the owners are notified and told the hours changed), or keep ${n === 1 ? "it" : "them"}?`;
        $("conflicts-list").replaceChildren(...answer.conflicting.map((r) => h("li", {}, conflictText(r))));
        $("cancel-conflicts").replaceChildren(`Cancel ${n === 1 ? "1 reservation" : `${n} reservations`}`);
        clearError($("conflicts-error"));
        dialog.showModal();
      } else {
        showOk($("weekly-ok"), "Hours saved. No reservation was affected.");
        announce("Hours saved.");
      }
    } catch (err) {
      showFieldErrors(weeklyForm, err, $("weekly-error"));
    }
  });
});

$("cancel-conflicts").addEventListener("click", () =>
  busy($("cancel-conflicts"), async () => {
    try {
      const answer = await putHours({ weekly: pendingWeekly, cancel_conflicting: true });
      dialog.close();
      const ids = answer.conflicts;
      showOk($("weekly-ok"), ids.length
        ? `Hours saved. Cancelled ${ids.length === 1 ? "1 reservation" : `${ids.length} reservations`} (${reservationsText(ids)}); the owners were notified.`
        : "Hours saved. The reservations outside them had already ended or been cancelled.");
      announce("Hours saved and conflicting reservations cancelled.");
      await refreshState();
    } catch (err) {
      showError($("conflicts-error"), err);
    }
  }),
);

$("keep-conflicts").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => {
  pendingWeekly = null;
  $("save-hours").focus();
});

$("copy-monday").addEventListener("click", () => {
  for (const day of ["tuesday", "wednesday", "thursday", "friday"]) weekly[day] = weekly.monday.map((s) => ({ ...s }));
  renderWeekly();
  announce("Monday's hours copied to Tuesday through Friday. Save to apply.");
});

// Closures: closed all day, or special hours (an editor like a day's).
function renderSpecial() {
  const wanted = closureForm.kind.value === "special";
  $("special").hidden = !wanted;
  if (wanted) spansEditor($("special"), special, "open", "special hours", "No hours: closed all day");
}
for (const radio of closureForm.querySelectorAll('input[name="kind"]')) radio.addEventListener("change", renderSpecial);

closureForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const button = closureForm.querySelector('button[type="submit"]');
  busy(button, async () => {
    clearError($("closure-error"));
    $("closure-ok").hidden = true;
    clearFieldErrors(closureForm);
    const body = {
      date_from: closureForm.date_from.value || null,
      date_to: closureForm.date_to.value || closureForm.date_from.value || null,
      reason: closureForm.reason.value.trim(),
      open: closureForm.kind.value === "special" ? special.map((s) => ({ ...s })) : null,
    };
    try {
      const c = await request("POST", `/admin/branches/${branch.id}/closures`, body);
      const ids = c.cancelled;
      showOk($("closure-ok"), `Closure “${c.reason}” added. ` + (ids.length
        ? `It cancelled ${ids.length === 1 ? "1 reservation" : `${ids.length} reservations`}: ${reservationsText(ids)}; the owners were told the reason.`
        : "No reservation was affected."));
      announce(`Closure ${c.reason} added.`);
      closureForm.reset();
      renderSpecial();
      await Promise.all([loadClosures(), refreshState()]);
    } catch (err) {
      if (err.code === "invalid_interval") {
        // The dates' order: said next to "To".
        showFieldErrors(closureForm, { status: 422, body: { detail: [{ loc: ["body", "date_to"], msg: err.body.detail }] } }, $("closure-error"));
      } else {
        showFieldErrors(closureForm, err, $("closure-error"));
      }
    }
  });
});

branchSelect.addEventListener("change", loadBranch);

async function start() {
  if (!(await staffOnly())) return;
  if (await fillBranchSelect(branchSelect, pageError)) await loadBranch();
}

start();
