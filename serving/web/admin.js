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
    { key: "action", label: "操作", render: (r) => h("span", { title: r.action }, r.action_label) },
    { key: "entity", label: "对象", render: (r) => r.entity_label }, { key: "entity_id", label: "编号" }, { key: "ip", label: "IP" }],
  rows, { testid: "audit" }));
}
$("#audit-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(loadAudit); });

// ---------------------------------------------------------------- tenant settings: one form per group
// Lists are edited one item per line; the gazetteer one district per line as "辖区：乡镇、街道、…".
const splitLines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);
const splitPlaces = (text) => text.split(/[、，,]/).map((p) => p.trim()).filter(Boolean);

function fieldInput(group, key, spec, value) {
  const id = `st-${group}-${key}`;
  // a choice's description names each value in words ("不足一档的扣分：ceil 按整档扣，floor 不扣…"): options show the words
  const words = spec.enum ? Object.fromEntries([...(spec.description || "").matchAll(/([a-z_]+) ([^，；,;a-z_]+)/g)]
    .map((m) => [m[1], m[2].trim()])) : {};
  const first = (spec.description || key).split("；")[0];
  const label = spec.enum ? first.split("：")[0] : first;
  let input;
  if (spec.type === "boolean") input = h("input", { id, type: "checkbox", checked: Boolean(value) });
  else if (spec.enum) input = h("select", { id }, spec.enum.map((v) => h("option", { value: v, selected: v === value }, words[v] || v)));
  else if (spec.type === "array") input = h("textarea", { id, rows: 6 }, (value || []).join("\n"));
  else if (spec.type === "object") {
    input = h("textarea", { id, rows: 6 }, Object.entries(value || {}).map(([d, ps]) => `${d}：${ps.join("、")}`).join("\n"));
  } else if (spec.type === "integer" || spec.type === "number") {
    input = h("input", { id, type: "number", step: spec.type === "integer" ? "1" : "any", value: value ?? "",
      min: spec.minimum ?? spec.exclusiveMinimum, max: spec.maximum });
  } else if (spec.format === "time") input = h("input", { id, type: "time", value: (value || "").slice(0, 5) });
  else input = h("input", { id, value: value ?? "" });
  return { key, spec, input, node: h("div", {}, h("label", { for: id, title: spec.description || "" }, label), input) };
}

function readField({ spec, input }) {
  if (spec.type === "boolean") return input.checked;
  if (spec.type === "array") return splitLines(input.value);
  if (spec.type === "object") {
    return Object.fromEntries(splitLines(input.value).map((line) => {
      const [district, places = ""] = line.split(/[：:]/, 2);
      return [district.trim(), splitPlaces(places)];
    }));
  }
  if (spec.type === "integer" || spec.type === "number") return input.value === "" ? null : Number(input.value);
  return input.value.trim();
}

function settingsForm(group) {
  const fields = Object.entries(group.schema.properties).map(([key, spec]) => fieldInput(group.name, key, spec, group.values[key]));
  const error = h("p", { class: "field-error", role: "alert" });
  const form = h("form", { class: "card", novalidate: true, "data-testid": `settings-${group.name}` },
    h("h2", {}, group.title), h("div", { class: "form-grid" }, fields.map((f) => f.node)), error,
    h("button", { class: "primary", type: "submit" }, "保存"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      await api(`/api/admin/settings/${group.name}`, { method: "PUT", body: Object.fromEntries(fields.map((f) => [f.key, readField(f)])) });
      toast(`${group.title}已保存`, "ok");
    } catch (err) { error.textContent = err.message; }
  });
  return form;
}

async function loadSettings() {
  const { groups } = await api("/api/admin/settings");
  clear($("#settings"), groups.map(settingsForm));
}

tabs(document, (name) => guarded({ users: loadUsers, settings: loadSettings, audit: loadAudit }[name]));
