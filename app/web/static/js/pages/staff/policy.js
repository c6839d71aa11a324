// /app/staff/policy: a branch's booking rules. GET /branches/{id} gives the effective
// `policy`; the form is filled with it, and PUT /admin/branches/{id}/policy is sent only
// the fields that were changed (an emptied field as null: back to the global default, or
// no limit for the two quotas), so saving never pins the global values on a branch.
// 200 answers the effective policy, shown again. 422s next to their fields (forms.js).
import { request } from "/static/js/api.js";
import { h, busy, showError, clearError, showOk, announce } from "/static/js/ui.js";
import { fillBranchSelect, staffOnly } from "/static/js/staff.js";
import { clearFieldErrors, showFieldErrors } from "/static/js/forms.js";

const $ = (id) => document.getElementById(id);
const form = $("policy");
const branchSelect = $("branch");
const pageError = $("page-error");

// [field, label, unit (plural), integer?, text when null]
const FIELDS = [
  ["max_reservation_hours", "Longest reservation", "hours", false, null],
  ["booking_horizon_days", "Booking horizon (days ahead)", "days", false, null],
  ["checkin_early_minutes", "Check-in opens before the start", "minutes", false, null],
  ["grace_minutes", "Grace period after the start", "minutes", false, null],
  ["claim_minutes", "Time to claim a waitlist offer", "minutes", false, null],
  ["max_bookings_per_day", "Bookings per student per day", "bookings", true, "no limit"],
  ["max_hours_per_week", "Booked hours per student per week", "hours", false, "no limit"],
];

let effective = {};

function valueText(value, unit, none) {
  if (value === null || value === undefined) return none || "global default";
  return `${Number(value)} ${unit}`;
}

function renderFields() {
  $("policy-fields").replaceChildren(
    ...FIELDS.map(([name, label, unit, integer, none]) => {
      const id = `policy-${name}`;
      const hint = `${id}-hint`;
      return h("div", { class: "field" },
        h("label", { for: id }, `${label} (${unit})`),
        h("input", {
          id, name, type: "number", inputmode: integer ? "numeric" : "decimal", min: 0,
          step: integer ? 1 : "any", autocomplete: "off", "aria-describedby": hint, dataset: { loc: name },
        }),
        h("p", { class: "hint", id: hint },
          none ? `Empty: ${none}.` : "Empty: the global default.", " In force: ",
          h("span", { class: "in-force-value", dataset: { field: name } }, "…"), "."),
      );
    }),
  );
}

function fill(policy) {
  effective = policy;
  for (const [name, label, unit, , none] of FIELDS) {
    form.elements[name].value = policy[name] === null || policy[name] === undefined ? "" : String(Number(policy[name]));
    form.querySelector(`.in-force-value[data-field="${name}"]`).textContent = valueText(policy[name], unit, none);
  }
  $("in-force").replaceChildren(
    ...FIELDS.flatMap(([name, label, unit, , none]) => [h("dt", {}, label), h("dd", { dataset: { field: name } }, valueText(policy[name], unit, none))]),
  );
}

/** The fields whose value differs from what is in force: {field: number | null}. */
function changes() {
  const body = {};
  for (const [name, , , integer] of FIELDS) {
    const raw = form.elements[name].value.trim();
    const was = effective[name] === null || effective[name] === undefined ? "" : String(Number(effective[name]));
    if (raw === was) continue;
    if (raw === "") body[name] = null;
    else if (form.elements[name].validity.badInput) body[name] = raw; // the API names it
    else body[name] = integer && Number.isInteger(Number(raw)) ? Number.parseInt(raw, 10) : Number(raw);
  }
  return body;
}

async function loadBranch() {
  clearError(pageError);
  clearFieldErrors(form);
  $("policy-ok").hidden = true;
  clearError($("policy-error"));
  const id = Number(branchSelect.value);
  if (!id) return;
  $("branch-name").textContent = branchSelect.selectedOptions[0].textContent;
  const url = new URL(location.href);
  url.searchParams.set("branch", branchSelect.selectedOptions[0].textContent);
  history.replaceState(null, "", url);
  try {
    fill((await request("GET", `/branches/${id}`)).policy);
  } catch (err) {
    showError(pageError, err);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("save-policy"), async () => {
    clearFieldErrors(form);
    clearError($("policy-error"));
    $("policy-ok").hidden = true;
    const body = changes();
    if (!Object.keys(body).length) {
      showOk($("policy-ok"), "Nothing changed.");
      return;
    }
    try {
      const policy = await request("PUT", `/admin/branches/${Number(branchSelect.value)}/policy`, body);
      fill(policy);
      const said = Object.keys(body).map((name) => {
        const [, label, unit, , none] = FIELDS.find((f) => f[0] === name);
        return `${label}: ${valueText(policy[name], unit, none)}${body[name] === null ? " (default)" : ""}`;
      });
      showOk($("policy-ok"), `Saved. ${said.join("; ")}.`);
      announce("Rules saved.");
    } catch (err) {
      showFieldErrors(form, err, $("policy-error"));
    }
  });
});

branchSelect.addEventListener("change", loadBranch);

async function start() {
  renderFields();
  if (!(await staffOnly())) return;
  if (await fillBranchSelect(branchSelect, pageError)) await loadBranch();
}

start();
