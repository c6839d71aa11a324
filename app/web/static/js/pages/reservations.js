import { me, requireSignIn } from "/static/js/api.js";
if (!(await me())) requireSignIn();
