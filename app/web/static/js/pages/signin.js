// /app/signin: POST /auth/session (sets the cookies), then back to ?next= or the branches.
import { signIn, nextPath, request } from "/static/js/api.js";
import { showError, clearError, busy } from "/static/js/ui.js";

const form = document.getElementById("signin-form");
const errorBox = document.getElementById("form-error");
const next = nextPath();
if (next !== "/app/branches") {
  document.getElementById("register-link").href = `/app/register?next=${encodeURIComponent(next)}`;
}

// Campus sign-in: a plain link (GET /auth/oidc/login, then the university's page), shown
// only when the server offers it; it brings the person back to ?next= as well.
request("GET", "/auth/providers").then((providers) => {
  if (!providers || !providers.oidc) return;
  const link = document.getElementById("campus-signin-link");
  const url = new URL(providers.oidc.login_url, location.origin);
  if (next !== "/app/branches") url.searchParams.set("next", next);
  link.href = url.pathname + url.search;
  if (providers.oidc.name) link.title = `Sign in through ${providers.oidc.name}`;
  document.getElementById("campus-signin").hidden = false;
}).catch(() => {}); // without it, the password form still works

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearError(errorBox);
  const studentId = form.student_id.value.trim();
  const password = form.password.value;
  if (!studentId || !password) {
    showError(errorBox, new Error("Enter your student ID and password."));
    (studentId ? form.password : form.student_id).focus();
    return;
  }
  busy(form.querySelector("button[type=submit]"), async () => {
    try {
      await signIn(studentId, password);
      location.assign(next);
      return true;
    } catch (err) {
      showError(errorBox, err);
      form.password.focus();
      return false;
    }
  }, (ok) => ok === true);
});
