// Errors next to the fields they are about. Controls (and fieldsets) carry `data-loc`, the
// body path the API names in a 422 (`weekly.monday.0.closes`, `reason`); a request
// validation error's `loc` (["body", "weekly", "monday", 0, "closes"]) is matched to the
// nearest element whose data-loc is a prefix of it. What matches no field goes to the form's
// error box, with the rest of the message.
//
//   import { clearFieldErrors, showFieldErrors } from "/static/js/forms.js";
//   clearFieldErrors(form);
//   catch (err) { showFieldErrors(form, err, errorBox); }

import { h, showError } from "/static/js/ui.js";

/** Remove every field error of `form` and its aria-invalid marks. */
export function clearFieldErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    const ids = (el.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && !id.startsWith("err-"));
    if (ids.length) el.setAttribute("aria-describedby", ids.join(" "));
    else el.removeAttribute("aria-describedby");
  }
}

function humanMsg(msg) {
  // Pydantic's "Value error, x" and "String should match pattern '^...$'".
  if (msg.startsWith("Value error, ")) return msg.slice("Value error, ".length);
  if (msg.startsWith("String should match pattern")) return "use HH:MM (24:00 for midnight)";
  return msg;
}

let seq = 0;

/** Attach `message` to the element `target` (a control or a fieldset). */
function attach(target, message) {
  const id = `err-${++seq}`;
  const note = h("p", { class: "field-error", id }, h("span", { "aria-hidden": "true" }, "⚠ "), message);
  const control = target.matches("input, select, textarea") ? target : null;
  if (control) {
    control.setAttribute("aria-invalid", "true");
    const described = control.getAttribute("aria-describedby");
    control.setAttribute("aria-describedby", described ? `${described} ${id}` : id);
    (control.closest(".field") || control).after(note);
  } else {
    target.setAttribute("aria-invalid", "true");
    const legend = target.querySelector(":scope > legend");
    if (legend) legend.after(note);
    else target.prepend(note);
  }
  return control || target;
}

/**
 * Show an ApiError from `form`'s request: FastAPI's 422 list per field, anything else (or
 * what matches no field) in `box`. Focuses the first field in error. Returns true when
 * at least one field error was placed.
 */
export function showFieldErrors(form, err, box) {
  clearFieldErrors(form);
  const issues = err.status === 422 && Array.isArray(err.body?.detail) ? err.body.detail : null;
  if (!issues) {
    showError(box, err);
    return false;
  }
  const leftover = [];
  let first = null;
  for (const issue of issues) {
    const path = (issue.loc || []).filter((p) => p !== "body" && p !== "query").map(String);
    let target = null;
    for (let n = path.length; n > 0 && !target; n--) {
      target = form.querySelector(`[data-loc="${CSS.escape(path.slice(0, n).join("."))}"]`);
    }
    if (target) {
      const el = attach(target, humanMsg(issue.msg));
      first = first || el;
    } else {
      leftover.push(`${path.join(".") || "input"}: ${humanMsg(issue.msg)}`);
    }
  }
  const placed = issues.length - leftover.length;
  const summary = placed
    ? `Please check the ${placed === 1 ? "field" : `${placed} fields`} marked ⚠.${leftover.length ? ` Also: ${leftover.join("; ")}` : ""}`
    : `Please check the form: ${leftover.join("; ")}`;
  showError(box, new Error(summary));
  if (first) first.focus?.();
  return placed > 0;
}
