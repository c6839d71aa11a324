// /s/{id}?k=: a seat's printed code. Signs in first if needed (and comes back), then
// POST /seats/{id}/scan {k}: checked in, a walk-in booking, or when the seat frees up.
import { request, me, requireSignIn, hhmm } from "/static/js/api.js";
import { h, showError, showOk } from "/static/js/ui.js";

const main = document.getElementById("main");
const seatId = main.dataset.seatId;
const k = main.dataset.k;
const progress = document.getElementById("scan-progress");
const errorBox = document.getElementById("scan-error");
const okBox = document.getElementById("scan-ok");

async function scan() {
  if (!k) {
    progress.hidden = true;
    showError(errorBox, new Error("This link has no seat code. Scan the code on the seat again."));
    return;
  }
  if (!(await me())) return requireSignIn();
  try {
    const result = await request("POST", `/seats/${seatId}/scan`, { k });
    const r = result.reservation;
    progress.hidden = true;
    if (result.action === "checked_in") {
      showOk(okBox, `Checked in to seat ${r.seat.label} until ${hhmm(r.end_time)}.`);
    } else {
      showOk(okBox, `Walk-in booked: seat ${r.seat.label} is yours until ${hhmm(r.end_time)}, and you're checked in.`);
    }
  } catch (err) {
    progress.hidden = true;
    if (err.status === 404) {
      showError(errorBox, new Error("This code doesn't match a seat. Scan the code on the seat again."));
    } else if (err.code === "seat_conflict") {
      const when = err.body.free_at ? `It frees up at ${hhmm(err.body.free_at)}.` : "It is taken for the rest of the day.";
      showError(errorBox, new Error(`Someone else has this seat right now. ${when}`), [
        h("div", { class: "actions" }, h("a", { class: "button", href: "/app/branches" }, "Find another seat")),
      ]);
    } else {
      showError(errorBox, err);
    }
  }
}

scan();
