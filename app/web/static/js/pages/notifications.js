// /app/notifications: newest first (GET /notifications), Mark read, live from the shell's
// notification stream (the "dlsms:notification" event).
import { request, me, requireSignIn, hhmm, dayTime } from "/static/js/api.js";
import { h, timeEl, busy, showError, clearError } from "/static/js/ui.js";
import { refreshUnread } from "/static/js/shell.js";

const list = document.getElementById("notifications");
const pageError = document.getElementById("page-error");

function describe(n) {
  const d = n.data || {};
  switch (n.type) {
    case "waitlist.offer":
      return `A seat is offered to you from ${hhmm(d.start_time)} to ${hhmm(d.end_time)}; claim it by ${hhmm(d.offer_expires_at)}.`;
    case "waitlist.expired":
      return "A waitlist offer expired before it was claimed.";
    case "reservation.no_show":
      return `You did not check in for your reservation at ${dayTime(d.start_time)}; it was released.`;
    case "reservation.cancelled":
      return `Your reservation was cancelled${d.reason ? `: ${d.reason}` : "."}`;
    case "reservation.reminder":
      return `Reminder: your reservation starts at ${hhmm(d.start_time)}.`;
    default:
      return n.type;
  }
}

function item(n) {
  const unread = !n.read_at;
  const mark = unread ? h("button", { type: "button", class: "button" }, "Mark read") : null;
  mark?.addEventListener("click", () =>
    busy(mark, async () => {
      try {
        await request("POST", `/notifications/${n.id}/read`);
        await load();
        refreshUnread();
      } catch (err) {
        showError(pageError, err);
      }
    }),
  );
  return h("li", { class: "card", dataset: { notificationId: n.id, read: String(!unread) } },
    h("p", {}, h("span", { class: "status" }, unread ? "● New" : "✓ Read"), " ", describe(n)),
    h("p", { class: "meta" }, timeEl(n.created_at, dayTime(n.created_at))),
    mark ? h("div", { class: "actions" }, mark) : null,
  );
}

async function load() {
  try {
    const page = await request("GET", "/notifications", null, { query: { limit: 100 } });
    list.replaceChildren(...(page.items.length ? page.items.map(item) : [h("li", { class: "empty" }, "No notifications yet.")]));
    list.setAttribute("aria-busy", "false");
    clearError(pageError);
  } catch (err) {
    if (err.status === 401) return requireSignIn();
    showError(pageError, err);
  }
}

if (!(await me())) requireSignIn();
else {
  await load();
  document.addEventListener("dlsms:notification", load);
}
