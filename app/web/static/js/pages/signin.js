// /app/signin: POST /auth/session (sets the cookies), then back to ?next= or the branches.
import { signIn, nextPath } from "/static/js/api.js";
import { showError, clearError, busy } from "/static/js/ui.js";

const form = document.getElementById("signin-form");
const errorBox = document.getElementById("form-error");
const next = nextPath();
if (next !== "/app/branches") {
  document.getElementById("register-link").href = `/app/register?next=${encodeURIComponent(next)}`;
}

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
