import { $, ROLE_LABELS, api, boot, clear, fmtTime, guarded, h, table, tabs, toast } from "./app.js";

await boot("admin", ["admin"]);

clear($("#u-role"), Object.entries(ROLE_LABELS).map(([k, v]) => h("option", { value: k }, v)));

async function loadUsers() {
  const users = await api("/api/admin/users");
  clear($("#users"), table([
    { key: "username", label: "用户名" }, { key: "display_name", label: "姓名" }, { key: "role_label", label: "角色" },
    { key: "active", label: "状态", render: (u) => h("span", { class: `badge ${u.active ? "ok" : "bad"}` }, u.active ? "启用" : "停用") },
    { key: "must_change_password", label: "密码", render: (u) => u.must_change_password ? h("span", { class: "badge warn" }, "待修改") : "" },
    { key: "ops", label: "操作", render: (u) => h("div", { class: "row" },
      u.active ? h("button", { type: "button", onclick: () => deactivate(u) }, "停用") : null,
      h("button", { type: "button", onclick: () => resetPassword(u) }, "重置密码")) },
  ], users, { testid: "users" }));
}

async function deactivate(u) {
  if (!confirm(`确定停用 ${u.username}？`)) return;
  await guarded(() => api(`/api/admin/users/${u.id}/deactivate`, { method: "POST" }));
  loadUsers();
}

async function resetPassword(u) {
  const pw = prompt(`为 ${u.username} 设置新密码（至少 10 位，含三类字符）`);
  if (!pw) return;
  const ok = await guarded(() => api(`/api/admin/users/${u.id}/password`, { method: "POST", body: { new_password: pw } }));
  if (ok) toast("密码已重置", "ok");
}

$("#user-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#u-error").textContent = "";
  try {
    await api("/api/admin/users", { method: "POST", body: { username: $("#u-username").value.trim(), display_name: $("#u-display").value.trim(),
      role: $("#u-role").value, password: $("#u-password").value } });
    e.target.reset();
    toast("用户已新增", "ok");
    loadUsers();
  } catch (err) { $("#u-error").textContent = err.message; }
});

async function loadAudit() {
  const action = $("#audit-action").value.trim();
  const rows = await api(`/api/admin/audit${action ? `?action=${encodeURIComponent(action)}` : ""}`);
  clear($("#audit"), table([{ key: "at", label: "时间", render: (r) => fmtTime(r.at) }, { key: "actor", label: "操作人" },
    { key: "action", label: "操作" }, { key: "entity", label: "对象" }, { key: "entity_id", label: "编号" }, { key: "ip", label: "IP" }],
  rows, { testid: "audit" }));
}
$("#audit-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(loadAudit); });

tabs(document, (name) => guarded(name === "users" ? loadUsers : loadAudit));
