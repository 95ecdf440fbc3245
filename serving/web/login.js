import { $, api, homeFor } from "./app.js";

const params = new URLSearchParams(location.search);
const next = params.get("next");
const safeNext = next && next.startsWith("/ui/") && !next.startsWith("/ui/index.html") ? next : null;

const NOTICES = { expired: "登录已过期，请重新登录。", password: "密码已修改，请用新密码登录。" };
if (NOTICES[params.get("reason")]) {
  $("#login-notice").textContent = NOTICES[params.get("reason")];
  $("#login-notice").hidden = false;
}

// already signed in: go straight to the work page
fetch("/api/auth/me", { credentials: "same-origin" }).then(async (r) => {
  if (r.ok) location.replace(safeNext || homeFor((await r.json()).role));
});

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = $("#login-error");
  error.textContent = "";
  const username = $("#login-username").value.trim();
  const password = $("#login-password").value;
  if (!username || !password) {
    error.textContent = "请输入用户名和密码";
    return;
  }
  $("#login-submit").disabled = true;
  try {
    const res = await api("/api/auth/login", {
      method: "POST", body: { tenant: $("#login-tenant").value.trim(), username, password, mode: "cookie" },
    });
    location.replace(safeNext || homeFor(res.user.role));
  } catch (err) {
    error.textContent = err.message;
    $("#login-password").select();
  } finally {
    $("#login-submit").disabled = false;
  }
});
