import { $, api, boot, chart, clear, fmtTime, guarded, h, localDay, table, tabs, toast } from "./app.js";

await boot("tickets", ["supervisor"]);

const OPEN = new Set(["created", "dispatched", "signed", "returned", "in_progress"]);
const ACTION_ZH = { create: "受理", supervise: "督办", dispatch: "派单", sign: "签收", return: "退单", redispatch: "重新派单", start: "开始办理", complete: "办结",
  callback: "回访", close: "关闭", reopen: "重新打开" };
const NEEDS = { dispatch: "department", redispatch: "department", return: "reason", reopen: "reason", complete: "result", callback: "satisfaction" };
const NEEDS_ZH = { department: "承办部门", reason: "原因", result: "办理结果", satisfaction: "满意度（1–5）" };
let all = [];
let current = "overdue";

function remaining(t) {
  const s = t.sla && t.sla.remaining_s;
  if (s === null || s === undefined) return t.sla && t.sla.on_time === false ? h("span", { class: "badge bad" }, "超期办结") : "—";
  const hours = Math.abs(s) / 3600;
  const text = hours >= 24 ? `${(hours / 24).toFixed(1)} 天` : `${hours.toFixed(1)} 小时`;
  return h("span", { class: `badge ${s < 0 ? "bad" : t.sla.level >= 1 ? "warn" : "ok"}` }, s < 0 ? `超期 ${text}` : `剩 ${text}`);
}

const FILTERS = {
  overdue: (t) => OPEN.has(t.state) && t.sla && t.sla.remaining_s !== null && t.sla.remaining_s < 0,
  supervised: (t) => t.supervised,
  returned: (t) => t.state === "returned",
  open: (t) => OPEN.has(t.state),
  all: () => true,
};

function render() {
  for (const k of ["overdue", "supervised", "returned"]) $(`#count-${k}`).textContent = String(all.filter(FILTERS[k]).length);
  clear($("#tk-board"), table([
    { key: "number", label: "工单号" }, { key: "category", label: "分类" }, { key: "district", label: "区县" },
    { key: "department", label: "承办部门" }, { key: "state_label", label: "状态" },
    { key: "sla", label: "时限", render: remaining }, { key: "created_at", label: "受理时间", render: (t) => fmtTime(t.created_at) },
  ], all.filter(FILTERS[current]), { testid: "ticket-board", onRow: (t) => guarded(() => detail(t.id)) }));
}

async function load() {
  const q = $("#tk-q").value.trim();
  all = await api(`/api/tickets?limit=500${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  render();
}

async function detail(id) {
  const t = await api(`/api/tickets/${id}`);
  const box = $("#tk-detail");
  box.hidden = false;
  const actionForm = (action) => {
    const need = NEEDS[action];
    const fieldId = `act-${action}-${need}`;
    const form = h("form", { class: "row inline", "data-action": action },
      need ? [h("label", { for: fieldId }, NEEDS_ZH[need]), h("input", { id: fieldId, class: "inline", name: need, required: true,
        type: need === "satisfaction" ? "number" : "text", min: 1, max: 5 })] : null,
      h("button", { type: "submit", class: "primary" }, ACTION_ZH[action] || action));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = { action };
      if (need) body[need] = need === "satisfaction" ? Number(form.elements[need].value) : form.elements[need].value.trim();
      if (await guarded(() => api(`/api/tickets/${id}/actions`, { method: "POST", body }))) {
        toast(`${ACTION_ZH[action]}成功`, "ok");
        await load();
        await detail(id);
      }
    });
    return form;
  };
  clear(box, h("h2", {}, `工单 ${t.number}`, " ", h("span", { class: "badge" }, t.state_label), t.supervised ? h("span", { class: "badge warn" }, "督办") : null),
    h("dl", {}, [["诉求类型", t.request_type], ["分类", t.category], ["来电人", t.caller_name], ["电话", t.phone], ["事发地址", t.incident_address],
      ["区县", t.district], ["承办部门", t.department], ["时限", remaining(t)]].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v || "—")])),
    h("h3", {}, "诉求内容"), h("p", {}, t.summary || "—"),
    t.result ? [h("h3", {}, "办理结果"), h("p", {}, t.result)] : null,
    h("h3", {}, "操作"), h("div", {}, t.allowed_actions.map(actionForm)),
    h("h3", {}, "流转记录"),
    table([{ key: "at", label: "时间", render: (e) => fmtTime(e.at) }, { key: "action", label: "操作", render: (e) => ACTION_ZH[e.action] || e.action },
      { key: "actor", label: "操作人" }, { key: "note", label: "说明" }], t.history || []),
    (t.transcript || []).length ? [h("h3", {}, "通话转写"), h("div", {}, t.transcript.map((s) => h("p", {}, `${s.role === "agent" ? "话务员" : "市民"}：${s.text}`)))] : null);
}

$("#tk-search").addEventListener("submit", (e) => { e.preventDefault(); guarded(load); });
$("#btn-supervise").addEventListener("click", () => guarded(async () => {
  const raised = await api("/api/tickets/supervise", { method: "POST" });
  toast(raised.length ? `新增督办 ${raised.length} 件` : "没有需要新增督办的工单", "ok");
  await load();
}));
// ---------------------------------------------------------------- ticket statistics (themed reports)
$("#ts-end").value = localDay();
$("#ts-start").value = localDay(new Date(Date.now() - 29 * 86400000));
const pct = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)}%`);
const bars = (rows) => ({ tooltip: { trigger: "axis" }, grid: { left: 50, right: 20, top: 20, bottom: 70 },
  xAxis: { type: "category", data: rows.map((r) => r.name), axisLabel: { rotate: rows.length > 6 ? 35 : 0 } },
  yAxis: { type: "value" }, series: [{ type: "bar", data: rows.map((r) => r.count), barMaxWidth: 32 }] });

async function loadStats() {
  const q = new URLSearchParams({ start: $("#ts-start").value, end: $("#ts-end").value, granularity: $("#ts-gran").value });
  const r = await api(`/api/tickets/reports?${q}`);
  $("#ts-xlsx").href = `/api/tickets/reports.xlsx?${q}`;
  const stat = (k, v) => h("div", { class: "card", style: { margin: 0 } }, h("div", { class: "muted" }, k), h("strong", { style: { fontSize: "1.3rem" } }, String(v)));
  clear($("#ts-summary"), stat("受理总量", r.total), stat("办结", r.completed), stat("按时办结率", pct(r.on_time_rate)),
    stat("退单率", pct(r.return_rate)), stat("超期未办结", r.overdue_open), stat("回访满意率", pct(r.satisfaction.satisfied_rate)));
  chart($("#ts-category"), { tooltip: { trigger: "item" }, legend: { type: "scroll", bottom: 0 },
    series: [{ type: "pie", radius: ["30%", "62%"], data: r.by_category.map((c) => ({ name: c.name, value: c.count })) }] });
  chart($("#ts-district"), bars(r.by_district));
  chart($("#ts-department"), bars(r.by_department));
  chart($("#ts-period"), { tooltip: { trigger: "axis" }, grid: { left: 50, right: 20, top: 20, bottom: 40 },
    xAxis: { type: "category", data: r.by_period.map((p) => p.name) }, yAxis: { type: "value" },
    series: [{ type: "line", areaStyle: { opacity: 0.2 }, data: r.by_period.map((p) => p.count) }] });
}
$("#ts-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(loadStats); });

tabs(document, (name) => {
  if (name === "stats") { guarded(loadStats); return; }
  current = name;
  if (all.length) render();
});
await guarded(load);
setInterval(() => guarded(load), 60000);
