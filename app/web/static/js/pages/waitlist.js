// /app/waitlist: my entries with their place in line (GET /waitlist), Leave (DELETE), and
// joining a branch's line when it is full (POST /waitlist {branch, ...}).
import { request, me, requireSignIn, hhmm, dayTime } from "/static/js/api.js";
import { h, timeEl, busy, showError, clearError, showOk, announce, dateValue, timeValue, localDate } from "/static/js/ui.js";

const list = document.getElementById("entries");
const pageError = document.getElementById("page-error");
const form = document.getElementById("join-form");
const joinError = document.getElementById("join-error");
const joinOk = document.getElementById("join-ok");

const STATUS_WORDS = {
  WAITING: "⏳ Waiting",
  OFFERED: "★ Offered: claim it in the banner",
  CLAIMED: "✓ Claimed",
  EXPIRED: "✕ Offer expired",
  CANCELLED: "✕ Left the line",
};

function item(e) {
  const target = e.seat_id ? `Seat #${e.seat_id} · ${e.branch}` : `Any seat · ${e.branch}`;
  const leave = e.status === "WAITING"
    ? h("button", { type: "button", class: "button danger" }, "Leave waitlist")
    : null;
  leave?.addEventListener("click", () =>
    busy(leave, async () => {
      try {
        await request("DELETE", `/waitlist/${e.id}`);
        announce("You left the waitlist.");
        await load();
      } catch (err) {
        showError(pageError, err);
      }
    }),
  );
  return h("li", { class: "card", dataset: { entryId: e.id, status: e.status } },
    h("h3", {}, target),
    h("p", { class: "meta" }, timeEl(e.start_time, dayTime(e.start_time)), " to ", timeEl(e.end_time, hhmm(e.end_time))),
    h("p", {}, h("span", { class: "status" }, STATUS_WORDS[e.status] || e.status),
      e.status === "WAITING" && e.position ? ` · number ${e.position} in line` : ""),
    leave ? h("div", { class: "actions" }, leave) : null,
  );
}

async function load() {
  try {
    const page = await request("GET", "/waitlist");
    const items = Array.isArray(page) ? page : page.items;
    const open = items.filter((e) => e.status === "WAITING" || e.status === "OFFERED");
    const rest = items.filter((e) => !open.includes(e));
    list.replaceChildren(...(items.length ? [...open, ...rest].map(item) : [h("li", { class: "empty" }, "You are not waiting for any seat.")]));
    list.setAttribute("aria-busy", "false");
    clearError(pageError);
  } catch (err) {
    if (err.status === 401) return requireSignIn();
    showError(pageError, err);
  }
}

async function fillBranches() {
  try {
    const branches = await request("GET", "/branches");
    form.branch.replaceChildren(...branches.map((b) => h("option", { value: b.name }, `${b.name} (${b.available_now} free now)`)));
    const wanted = new URLSearchParams(location.search).get("branch");
    if (wanted) form.branch.value = wanted;
  } catch (err) {
    showError(joinError, err);
  }
}

const now = new Date();
form.date.value = dateValue(now);
form.start.value = timeValue(now);

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearError(joinError);
  joinOk.hidden = true;
  let start = localDate(form.date.value, form.start.value);
  if (start.getTime() < Date.now()) start = new Date(Math.floor(Date.now() / 60000) * 60000);
  const end = new Date(start.getTime() + Number(form.duration.value) * 60000);
  busy(form.querySelector("button[type=submit]"), async () => {
    try {
      const entry = await request("POST", "/waitlist",
        { branch: form.branch.value, start_time: start.toISOString(), end_time: end.toISOString() });
      showOk(joinOk, `You're number ${entry.position} in line at ${entry.branch}.`);
      await load();
    } catch (err) {
      showError(joinError, err);
    }
  });
});

if (!(await me())) requireSignIn();
else {
  await Promise.all([load(), fillBranches()]);
  document.addEventListener("dlsms:changed", load);
  document.addEventListener("dlsms:notification", load);
}
