// Small DOM helpers shared by every page (no framework).
//
//   import { h, announce, showError, clearError, countdown, busy } from "/static/js/ui.js";
//   list.append(h("li", { class: "item", dataset: { id: 3 } }, "text", h("strong", {}, "bold")));
//
// Text always goes in as text nodes (never innerHTML), so API data cannot inject markup.

/** Create an element. attrs: `class`, `dataset`, `hidden`, `on: {click: fn}`, any attribute. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "text") el.textContent = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A <time datetime="ISO"> showing `text`. */
export function timeEl(iso, text) {
  return h("time", { datetime: iso }, text);
}

/** Say `message` in the page's polite live region (screen readers hear it once). */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick is announced even when the text repeats.
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

/**
 * Show an error (an ApiError or any Error) in `box`, an element with role="alert" the
 * template provides. `actions`: extra elements (e.g. a "Join waitlist" button).
 */
export function showError(box, error, actions = []) {
  box.replaceChildren(h("p", {}, h("span", { class: "icon", "aria-hidden": "true" }, "⚠ "), error.message), ...actions);
  box.hidden = false;
}

export function clearError(box) {
  box.replaceChildren();
  box.hidden = true;
}

/** Show a success message in `box` (role="status"). */
export function showOk(box, message, ...extra) {
  box.replaceChildren(h("p", {}, h("span", { class: "icon", "aria-hidden": "true" }, "✓ "), message), ...extra);
  box.hidden = false;
}

/** "9:41" / "1:02:03" until `deadline` (ms); "0:00" once passed. */
export function remaining(deadlineMs, nowMs = Date.now()) {
  let s = Math.max(0, Math.round((deadlineMs - nowMs) / 1000));
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const m = Math.floor(s / 60);
  const sec = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/**
 * Keep `el`'s text at the time left until `iso`, once a second; `onEnd` runs once at zero.
 * Stops by itself when `el` leaves the document. Returns a stop function.
 */
export function countdown(el, iso, onEnd = null) {
  const deadline = new Date(iso).getTime();
  let timer = null;
  const tick = () => {
    if (!el.isConnected && timer !== null) return stop();
    el.textContent = remaining(deadline);
    if (Date.now() >= deadline) {
      stop();
      if (onEnd) onEnd();
    }
  };
  const stop = () => {
    if (timer !== null) clearInterval(timer);
    timer = null;
  };
  tick();
  if (Date.now() < deadline) timer = setInterval(tick, 1000);
  return stop;
}

/**
 * Run `action` with `button` disabled (so a double click acts once) and marked busy;
 * re-enabled afterwards unless `keepDisabled` returns true for the result.
 */
export async function busy(button, action, keepDisabled = () => false) {
  if (button.disabled) return undefined;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  let result;
  try {
    result = await action();
    return result;
  } finally {
    button.removeAttribute("aria-busy");
    if (!keepDisabled(result)) button.disabled = false;
  }
}

/** "2026-12-01" for a Date, in local time (the value of an <input type="date">). */
export function dateValue(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/** "14:05" for a Date, local (the value of an <input type="time">). */
export function timeValue(d) {
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/** The local Date of a date input's and a time input's values. */
export function localDate(dateStr, timeStr) {
  const [y, mo, d] = dateStr.split("-").map(Number);
  const [hh, mm] = timeStr.split(":").map(Number);
  return new Date(y, mo - 1, d, hh, mm);
}
