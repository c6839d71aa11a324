// Live waitlist offers, on every page: one role="alert" banner per offer in #offers,
// naming the seat and the claim deadline (local HH:MM in a <time>), with a countdown and
// Claim / Decline. Decline cancels the HELD reservation, so the next in line gets it.
// After a claim or decline, "dlsms:changed" is dispatched on `document` (pages reload
// what they show).

import { request, hhmm } from "/static/js/api.js";
import { h, timeEl, countdown, busy } from "/static/js/ui.js";

const shown = new Map(); // entry id -> banner element

function container() {
  return document.getElementById("offers");
}

function changed() {
  document.dispatchEvent(new CustomEvent("dlsms:changed"));
}

/** Show the offer of a `waitlist.offer` notification's data (once per entry). */
export async function showOffer(data) {
  const box = container();
  if (!box || shown.has(data.entry_id)) return;
  if (new Date(data.offer_expires_at).getTime() <= Date.now()) return;
  shown.set(data.entry_id, null);
  let seat = { label: `#${data.seat_id}`, branch: "" };
  try {
    seat = (await request("GET", `/reservations/${data.reservation_id}`)).seat;
  } catch (err) {
    if (err.status === 404) {
      shown.delete(data.entry_id);
      return; // already gone (declined elsewhere, expired)
    }
  }
  const left = h("span", { class: "countdown" });
  const message = h("p", { class: "offer-text" },
    h("span", { class: "icon", "aria-hidden": "true" }, "★ "),
    `Seat ${seat.label}${seat.branch ? ` at ${seat.branch}` : ""} is free for you from ${hhmm(data.start_time)} to ${hhmm(data.end_time)}. Claim it by `,
    timeEl(data.offer_expires_at, hhmm(data.offer_expires_at)),
    " ",
    h("span", { "aria-hidden": "true" }, "(", left, " left)"),
    ".",
  );
  const claim = h("button", { type: "button", class: "button primary" }, "Claim");
  const decline = h("button", { type: "button", class: "button" }, "Decline");
  const banner = h("div", { role: "alert", class: "offer", dataset: { entryId: data.entry_id, reservationId: data.reservation_id } },
    message, h("div", { class: "actions" }, claim, decline));

  const finish = (text) => {
    banner.replaceWith(h("div", { role: "status", class: "offer done" }, h("p", {}, text)));
    shown.delete(data.entry_id);
    changed();
  };
  claim.addEventListener("click", () =>
    busy(claim, async () => {
      try {
        await request("POST", `/waitlist/${data.entry_id}/claim`);
        finish(`Seat ${seat.label} is yours, ${hhmm(data.start_time)} to ${hhmm(data.end_time)}.`);
      } catch (err) {
        message.after(h("p", { class: "error" }, err.message));
        if (err.code === "offer_expired" || err.status === 404) decline.disabled = true;
      }
    }),
  );
  decline.addEventListener("click", () =>
    busy(decline, async () => {
      try {
        await request("DELETE", `/reservations/${data.reservation_id}`);
        finish(`You declined seat ${seat.label}; it goes to the next person in line.`);
      } catch (err) {
        message.after(h("p", { class: "error" }, err.message));
      }
    }),
  );
  shown.set(data.entry_id, banner);
  box.append(banner);
  countdown(left, data.offer_expires_at, () => dropOffer(data.entry_id, `The offer for seat ${seat.label} has expired.`));
}

/** Remove an offer's banner, leaving `why` as a status line. */
export function dropOffer(entryId, why = "") {
  const banner = shown.get(entryId);
  shown.delete(entryId);
  if (!banner) return;
  if (why) banner.replaceWith(h("div", { role: "status", class: "offer done" }, h("p", {}, why)));
  else banner.remove();
  changed();
}

/** Show every open offer of the signed-in user (GET /waitlist: entries OFFERED). */
export async function loadOffers() {
  let page;
  try {
    page = await request("GET", "/waitlist");
  } catch {
    return;
  }
  const items = Array.isArray(page) ? page : page.items;
  for (const e of items) {
    if (e.status === "OFFERED" && e.reservation_id) {
      showOffer({
        entry_id: e.id,
        reservation_id: e.reservation_id,
        seat_id: e.seat_id,
        start_time: e.start_time,
        end_time: e.end_time,
        offer_expires_at: e.offer_expires_at,
      });
    }
  }
}
