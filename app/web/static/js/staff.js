// Shared by the staff pages (templates/staff/_layout.html): the role check and small
// helpers. The pages are a convenience for the admin API; the API refuses students anyway.
//
//   import { staffOnly, branches, pct } from "/static/js/staff.js";
//   const user = await staffOnly();   // null: not staff (the page shows why) or signing in
//   if (!user) return;

import { me, request, requireSignIn } from "/static/js/api.js";
import { h, showError } from "/static/js/ui.js";

/** Reveal #staff-page for an admin and resolve to the user; else say why and resolve null. */
export async function staffOnly() {
  const notice = document.getElementById("staff-only");
  let user;
  try {
    user = await me();
  } catch (err) {
    notice.replaceChildren(h("p", {}, h("span", { "aria-hidden": "true" }, "⚠ "), err.message));
    notice.hidden = false;
    return null;
  }
  if (!user) {
    requireSignIn();
    return null;
  }
  if (user.role !== "admin") {
    notice.replaceChildren(
      h("h1", {}, "Staff only"),
      h("p", {}, `This page is for library staff. You are signed in as ${user.name || user.student_id}, with a student account.`),
      h("p", {}, h("a", { href: "/app/branches" }, "Go to the branches"), " or ", h("a", { href: "/app/reservations" }, "see my reservations"), "."),
    );
    notice.hidden = false;
    return null;
  }
  document.getElementById("staff-page").hidden = false;
  return user;
}

/**
 * Fill a branch <select> (option values: branch ids) from GET /branches, sorted by name,
 * choosing the branch named by ?branch= when there is one. False when there is nothing to
 * choose (the reason shown in `errorBox`).
 */
export async function fillBranchSelect(select, errorBox) {
  let branches;
  try {
    branches = (await request("GET", "/branches")).sort((a, b) => a.name.localeCompare(b.name));
  } catch (err) {
    showError(errorBox, err);
    return false;
  }
  if (!branches.length) {
    showError(errorBox, new Error("No branches yet: add one on the Seats page."));
    return false;
  }
  select.replaceChildren(...branches.map((b) => h("option", { value: b.id }, b.name)));
  const wanted = new URLSearchParams(location.search).get("branch");
  const match = branches.find((b) => b.name === wanted);
  if (match) select.value = String(match.id);
  return true;
}

/** Every branch's name (GET /branches), sorted. */
export async function branchNames() {
  const list = await request("GET", "/branches");
  return list.map((b) => b.name).sort((a, b) => a.localeCompare(b));
}

/** Fill a <select> with branch names; keep `wanted` selected when it is one of them. */
export function fillSelect(select, names, wanted = null, first = null) {
  const options = names.map((n) => h("option", { value: n }, n));
  select.replaceChildren(...(first ? [h("option", { value: "" }, first)] : []), ...options);
  if (wanted !== null && (names.includes(wanted) || (first && wanted === ""))) select.value = wanted;
}

/** 0.3333 -> "33%", 0.0312 -> "3.1%" (one decimal under 10 %). */
export function pct(fraction) {
  const p = fraction * 100;
  if (p === 0) return "0%";
  return p < 10 ? `${p.toFixed(1)}%` : `${Math.round(p)}%`;
}

/** Every page of a paged admin list (`{items, total}`), 500 at a time. */
export async function allPages(path, query = {}) {
  const items = [];
  for (let offset = 0; ; offset += 500) {
    const page = await request("GET", path, null, { query: { ...query, limit: 500, offset } });
    items.push(...page.items);
    if (!page.items.length || items.length >= page.total) return items;
  }
}
