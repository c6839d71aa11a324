// /app/staff/stats: GET /admin/stats for a period as charts drawn here in SVG (no chart
// library): utilization and no-show rate per branch (horizontal bars), bookings by hour of
// day (`by_hour`, on each branch's own clock). Every chart has role="img", an aria-label that
// sums it up, text labels and values on the bars, and a <details> table of its numbers.
import { request } from "/static/js/api.js";
import { h, showError, clearError, dateValue, localDate } from "/static/js/ui.js";
import { staffOnly, branchNames, fillSelect, pct } from "/static/js/staff.js";

const $ = (id) => document.getElementById(id);
const form = $("period");
const pageError = $("page-error");
const SVG = "http://www.w3.org/2000/svg";

let last = null; // the latest answer, redrawn when the width changes

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** The figure's chart, caption and number table, replacing what it showed; a table the
 * reader opened stays open (a redraw on resize must not close it under them). */
function fill(figure, caption, svg, table) {
  table.open = Boolean(figure.querySelector("details.numbers")?.open);
  figure.replaceChildren(h("figcaption", {}, caption), svg, table);
}

function numbersTable(caption, headers, rows) {
  return h("details", { class: "numbers" },
    h("summary", {}, `${caption}: the numbers`),
    h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": `${caption}: table` },
      h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ...headers.map((t, i) => h("th", { scope: "col", class: i ? "num" : null }, t)))),
        h("tbody", {}, ...rows.map((r) => h("tr", {}, h("th", { scope: "row" }, r[0]), ...r.slice(1).map((c) => h("td", { class: "num" }, c))))),
      ),
    ),
  );
}

function short(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** Horizontal bars, one per row {label, value (0..1), text}; sized to the figure (as
 * hourBars) so that its text keeps its size on a phone. */
function hbars(figure, caption, summary, rows, cls = "") {
  const width = Math.max(300, Math.min(900, Math.round(figure.clientWidth || 640) - 32));
  const labelW = Math.round(width * 0.3);
  const valueW = 56;
  const rowH = 34;
  const height = Math.max(1, rows.length) * rowH + 8;
  const plot = width - labelW - valueW;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary, class: "hbars" });
  rows.forEach((r, i) => {
    const y = 4 + i * rowH;
    const w = Math.max(r.value > 0 ? 2 : 0, Math.round(plot * Math.min(1, r.value)));
    svg.append(
      s("text", { x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end", class: "label" }, short(r.label, Math.floor(labelW / 7))),
      s("rect", { x: labelW, y: y + 5, width: plot, height: rowH - 12, class: "grid", fill: "none" }),
      s("rect", { x: labelW, y: y + 5, width: w, height: rowH - 12, class: `bar ${cls}`, "data-label": r.label, "data-value": r.text }),
      s("text", { x: labelW + w + 6, y: y + rowH / 2 + 4, class: "value" }, r.text),
    );
  });
  if (!rows.length) svg.append(s("text", { x: 8, y: 24, class: "label" }, "No branches."));
  fill(figure, caption, svg, numbersTable(caption, ["Branch", caption.split(" by ")[0]], rows.map((r) => [r.label, r.text])));
}

/** Vertical bars for hours 0..23; sized to the figure so its text stays readable. */
function hourBars(figure, caption, summary, counts) {
  const width = Math.max(320, Math.min(900, Math.round(figure.clientWidth || 640) - 32));
  const narrow = width < 520;
  const height = 220;
  const left = 8;
  const bottom = 26;
  const top = 18;
  const slot = (width - left * 2) / 24;
  const max = Math.max(1, ...counts);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary, class: "vbars" });
  const base = height - bottom;
  svg.append(s("line", { x1: left, x2: width - left, y1: base, y2: base, class: "axis-line" }));
  counts.forEach((n, hour) => {
    const x = left + hour * slot;
    const barH = Math.round(((base - top) * n) / max);
    svg.append(s("rect", { x: x + slot * 0.15, y: base - barH, width: slot * 0.7, height: barH, class: "bar", "data-hour": hour, "data-value": n }));
    if (n) svg.append(s("text", { x: x + slot / 2, y: base - barH - 4, "text-anchor": "middle", class: "value" }, n));
    if (!narrow || hour % 3 === 0) svg.append(s("text", { x: x + slot / 2, y: height - 8, "text-anchor": "middle", class: "axis" }, String(hour).padStart(2, "0")));
  });
  const rows = counts.map((n, hour) => [`${String(hour).padStart(2, "0")}:00–${String(hour).padStart(2, "0")}:59`, n]);
  fill(figure, caption, svg, numbersTable(caption, ["Hour", "Reservations"], rows));
}

function hourSummary(counts, where) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return `Bookings by hour of day, ${where}: none in this period.`;
  const peak = Math.max(...counts);
  const peaks = counts.map((n, i) => (n === peak ? `${String(i).padStart(2, "0")}:00` : null)).filter(Boolean);
  return `Bookings by hour of day, ${where}: ${total} in all; busiest ${peaks.join(", ")} with ${peak}.`;
}

function draw(answer) {
  const branches = answer.branches;
  const util = branches.map((b) => ({ label: b.branch, value: b.utilization, text: pct(b.utilization) }));
  const noshow = branches.map((b) => ({ label: b.branch, value: b.no_show_rate, text: pct(b.no_show_rate) }));
  const list = (rows) => rows.map((r) => `${r.label} ${r.text}`).join(", ");
  hbars($("utilization-chart"), "Utilization by branch", `Utilization by branch: ${list(util)}.`, util);
  hbars($("noshow-chart"), "No-show rate by branch", `No-show rate by branch: ${list(noshow)}.`, noshow, "alt");
  const counts = Array.from({ length: 24 }, (_, hour) => branches.reduce((sum, b) => sum + (b.by_hour[hour]?.reservations || 0), 0));
  const where = branches.length === 1 ? branches[0].branch : "all branches, each on its local clock";
  hourBars($("hours-chart"), `Bookings by hour of day (${where})`, hourSummary(counts, where), counts);
  $("numbers").tBodies[0].replaceChildren(
    ...branches.map((b) =>
      h("tr", {},
        h("th", { scope: "row" }, b.branch),
        ...[b.reservations, b.checked_in, b.no_shows, pct(b.no_show_rate), b.cancelled, pct(b.utilization)].map((v) => h("td", { class: "num" }, v)),
      ),
    ),
  );
}

let loads = 0; // only the newest request's answer is drawn (an older one may come later)

async function load() {
  const mine = ++loads;
  const start = localDate(form.from.value, "00:00");
  const end = localDate(form.to.value, "00:00");
  end.setDate(end.getDate() + 1);
  $("charts").setAttribute("aria-busy", "true");
  try {
    if (end <= start) throw new Error("The period must end on or after the day it starts.");
    const answer = await request("GET", "/admin/stats", null, {
      query: { start_time: start.toISOString(), end_time: end.toISOString(), branch: form.branch.value || null },
    });
    if (mine !== loads) return;
    last = answer;
    clearError(pageError);
    draw(last);
    const days = Math.round((end - start) / 86400000);
    $("period-summary").textContent = `${form.from.value} to ${form.to.value} (${days} day${days === 1 ? "" : "s"}), ${form.branch.value || "all branches"}.`;
  } catch (err) {
    if (mine === loads) showError(pageError, err);
  } finally {
    if (mine === loads) $("charts").setAttribute("aria-busy", "false");
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => last && draw(last), 200);
});

async function start() {
  if (!(await staffOnly())) return;
  const params = new URLSearchParams(location.search);
  const today = new Date();
  const weekAgo = new Date(today);
  weekAgo.setDate(today.getDate() - 6);
  form.from.value = params.get("from") || dateValue(weekAgo);
  form.to.value = params.get("to") || dateValue(today);
  try {
    fillSelect(form.branch, await branchNames(), params.get("branch") || "", "All branches");
  } catch (err) {
    showError(pageError, err);
  }
  await load();
}

start();
