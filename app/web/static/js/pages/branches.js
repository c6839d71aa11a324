// /app/branches: GET /branches, each with its free / reserved / occupied counts; live from
// /seats/stream (any seat event re-reads the counts; so does every (re)connection).
import { request } from "/static/js/api.js";
import { h, showError, clearError } from "/static/js/ui.js";

const list = document.getElementById("branches");
const errorBox = document.getElementById("page-error");

function render(branches) {
  if (!branches.length) {
    list.replaceChildren(h("li", { class: "empty" }, "No branches yet."));
    return;
  }
  list.replaceChildren(
    ...branches.map((b) =>
      h("li", { class: "card", dataset: { branch: b.name } },
        h("h2", {}, h("a", { href: `/app/branches/${encodeURIComponent(b.name)}` }, b.name)),
        h("ul", { class: "counts" },
          h("li", { dataset: { count: "free" } }, `✓ ${b.available_now} free`),
          h("li", { dataset: { count: "reserved" } }, `● ${b.reserved_now} reserved`),
          h("li", { dataset: { count: "occupied" } }, `■ ${b.occupied_now} occupied`),
          h("li", {}, `${b.total_seats} seats`),
        ),
        h("p", { class: "meta" }, `${b.with_power} with power, ${b.with_monitor} with a monitor` +
          (b.areas.length ? ` · Areas: ${b.areas.join(", ")}` : "")),
      ),
    ),
  );
}

let pending = null;
async function load() {
  try {
    render(await request("GET", "/branches"));
    clearError(errorBox);
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
load();
