// /app/staff/codes/{branch}: one card per seat with its QR code (GET /admin/seats/{id}/qr.svg
// as an <img>), label and area, from GET /admin/branches/{name}/codes; print CSS in staff.css.
import { h, showError } from "/static/js/ui.js";
import { staffOnly, allPages } from "/static/js/staff.js";

const branch = document.getElementById("main").dataset.branch;
const grid = document.getElementById("codes");
const pageError = document.getElementById("page-error");

function card(code) {
  return h("li", { class: "code-card", dataset: { seatId: code.seat_id } },
    h("img", { src: `/admin/seats/${code.seat_id}/qr.svg`, alt: `QR code for seat ${code.label}`, width: 180, height: 180 }),
    h("p", { class: "seat-label" }, code.label),
    h("p", { class: "seat-area" }, code.area),
    h("p", { class: "seat-url" }, code.url),
  );
}

async function start() {
  if (!(await staffOnly())) return;
  document.getElementById("print").addEventListener("click", () => window.print());
  try {
    const codes = await allPages(`/admin/branches/${encodeURIComponent(branch)}/codes`);
    grid.replaceChildren(...codes.map(card));
    document.getElementById("codes-summary").textContent = codes.length
      ? `${codes.length} seat${codes.length === 1 ? "" : "s"}.`
      : "This branch has no seats yet.";
  } catch (err) {
    showError(pageError, err);
  } finally {
    grid.setAttribute("aria-busy", "false");
  }
}

start();
