import { $, api, boot, toast } from "./app.js";

await boot("account");

$("#password-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = $("#pw-error");
  error.textContent = "";
  const oldPw = $("#pw-old").value;
  const newPw = $("#pw-new").value;
  if (newPw !== $("#pw-new2").value) {
    error.textContent = "两次输入的新密码不一致";
    return;
  }
  try {
    await api("/api/auth/password", { method: "POST", body: { old_password: oldPw, new_password: newPw } });
    e.target.reset();
    toast("密码已修改，请用新密码重新登录", "ok");
    setTimeout(() => location.replace("/ui/index.html?reason=password"), 1500);
  } catch (err) {
    error.textContent = err.message;
  }
});
