// /app/register: POST /auth/register, then sign in (POST /auth/session) and go on.
import { request, signIn, nextPath } from "/static/js/api.js";
import { showError, clearError, busy } from "/static/js/ui.js";

const form = document.getElementById("register-form");
const errorBox = document.getElementById("form-error");

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearError(errorBox);
  const body = {
    student_id: form.student_id.value.trim(),
    name: form.name.value.trim(),
    password: form.password.value,
  };
  const email = form.email.value.trim();
  if (email) body.email = email;
  if (!body.student_id || !body.name || body.password.length < 8) {
    showError(errorBox, new Error("Enter a student ID, your name and a password of at least 8 characters."));
    return;
  }
  busy(form.querySelector("button[type=submit]"), async () => {
    try {
      await request("POST", "/auth/register", body);
      await signIn(body.student_id, body.password);
      location.assign(nextPath());
      return true;
    } catch (err) {
      showError(errorBox, err);
      return false;
    }
  }, (ok) => ok === true);
});
