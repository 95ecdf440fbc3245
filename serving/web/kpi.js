import { $, api, boot, chart, clear, fmtNum, fmtTime, guarded, h, localDay, table, toast } from "./app.js";

await boot("kpi", ["supervisor", "admin"]);

// KPI endpoints (serving/api/kpi.py); reading a month recomputes it from the system's data and the manual entries
const ops = {
  get: (month) => api(`/api/kpi/months/${month}`),
  trend: () => api("/api/kpi/trend"),
  addManual: (month, body) => api(`/api/kpi/months/${month}/entries`, { method: "POST", body }),
  removeManual: (month, id) => api(`/api/kpi/months/${month}/entries/${id}`, { method: "DELETE" }),
  exportUrl: (month, fmt) => `/api/kpi/export?months=${month}&fmt=${fmt}`,
};
const MANUAL_KINDS = { commendation: "表扬（加分）", incident: "事故/处罚（扣分）", complaint: "有效投诉（件）",
  leaver: "人员流失（人）", rating_exclusion: "满意度评价剔除（件）", override: "人工修正数据" };
const money = (v) => (v === null || v === undefined ? "—" : `¥${Number(v).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`);

// the counted inputs an override may correct (qa.kpi.KpiInputs), in words
const INPUTS = { calls_incoming: "呼入总量", calls_lost: "系统丢失量", calls_to_agents: "转人工量", calls_answered: "人工接通量",
  ratings_total: "满意度评价总数", ratings_satisfied: "满意评价数", qa_samples: "质检抽样数", qa_samples_answer_ok: "解答准确样本数",
  qa_samples_service_ok: "服务达标样本数", complaints_justified: "有效投诉数", calls_handled: "受理话务量（投诉率分母）",
  leavers: "人员流失数", reward_points: "表扬加分", penalty_points: "事故扣分" };
clear($("#mn-kind"), Object.entries(MANUAL_KINDS).map(([k, v]) => h("option", { value: k }, v)));
clear($("#mn-field"), Object.entries(INPUTS).map(([k, v]) => h("option", { value: k }, v)));
$("#kpi-month").value = localDay().slice(0, 7);

function render(data) {
  const r = data;
  const stat = (label, value, testid) => h("div", { class: "card", style: { margin: 0, minWidth: "150px" } },
    h("div", { class: "muted" }, label), h("strong", { style: { fontSize: "1.5rem" }, "data-testid": testid }, value));
  clear($("#kpi-summary"), r && r.indicators ? [
    stat("考核月份", r.month, "kpi-month"), stat("基础得分", fmtNum(r.base_score, 2)), stat("加分", fmtNum(r.bonus, 2)),
    stat("总得分", fmtNum(r.total_score, 2), "kpi-total"), stat("等级系数", fmtNum(r.coefficient, 2), "kpi-coefficient"),
    stat("当月服务费", money(r.fee_cny), "kpi-fee"),
    h("p", { class: "muted" }, `服务费 = 合同总额 ÷ ${r.settings.contract_months} × 等级系数；核算于 ${fmtTime(new Date())}`),
  ] : h("p", { class: "muted" }, "本月尚未核算，请点击“重新核算”。"));
  clear($("#kpi-indicators"), table([
    { key: "no", label: "序号" }, { key: "name", label: "指标" }, { key: "standard", label: "考核标准" },
    { key: "weight", label: "分值" },
    { key: "actual", label: "实际值", render: (i) => (i.actual === null ? "—" : `${fmtNum(i.actual, 2)}${i.unit}`) },
    { key: "ratio", label: "分子/分母", render: (i) => `${fmtNum(i.numerator, 2)} / ${fmtNum(i.denominator, 2)}` },
    { key: "deduction", label: "扣分", render: (i) => fmtNum(i.deduction, 2) },
    { key: "score", label: "得分", render: (i) => h("strong", {}, fmtNum(i.score, 2)) },
    { key: "working", label: "计算过程", render: (i) => h("span", { class: "muted" }, i.working) },
  ], (r && r.indicators) || [], { testid: "kpi-indicators", empty: "暂无核算结果" }));
  clear($("#kpi-manual"), table([
    { key: "kind", label: "类型", render: (m) => `${MANUAL_KINDS[m.kind] || m.kind}${m.field ? `：${INPUTS[m.field] || m.field}` : ""}` },
    { key: "value", label: "数值" }, { key: "note", label: "备注" }, { key: "by", label: "录入人" },
    { key: "ops", label: "", render: (m) => h("button", { type: "button", onclick: () => removeManual(m.id) }, "删除") },
  ], data.entries || [], { testid: "kpi-entries", empty: "本月无人工录入" }));
}

async function load() {
  const month = $("#kpi-month").value;
  $("#kpi-export").href = ops.exportUrl(month, "xlsx");
  $("#kpi-export-pdf").href = ops.exportUrl(month, "pdf");
  render(await ops.get(month));
  const rows = await ops.trend();
  chart($("#kpi-trend"), { tooltip: { trigger: "axis" }, legend: {}, grid: { left: 50, right: 50, top: 40, bottom: 30 },
    xAxis: { type: "category", data: rows.map((t) => t.month) },
    yAxis: [{ type: "value", name: "得分", min: 60, max: 105 }, { type: "value", name: "系数", min: 0.7, max: 1 }],
    series: [{ name: "总得分", type: "line", data: rows.map((t) => t.total_score) },
      { name: "等级系数", type: "bar", yAxisIndex: 1, data: rows.map((t) => t.coefficient), barWidth: 16 }] });
}

async function removeManual(id) {
  if (await guarded(() => ops.removeManual($("#kpi-month").value, id)) !== undefined) await guarded(load);
}

$("#kpi-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(load); });
$("#kpi-month").addEventListener("change", () => guarded(load));
$("#kpi-compute").addEventListener("click", () => guarded(async () => {
  await load();
  toast("已按最新数据重新核算", "ok");
}));
$("#mn-kind").addEventListener("change", () => { $("#mn-field-box").hidden = $("#mn-kind").value !== "override"; });
$("#manual-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#mn-error").textContent = "";
  try {
    const kind = $("#mn-kind").value;
    const raw = $("#mn-value").value.trim(); // an empty box is no value, not 0
    if (!raw) { $("#mn-error").textContent = "数值：不能为空"; $("#mn-value").focus(); return; }
    await ops.addManual($("#kpi-month").value, { kind, value: Number(raw), note: $("#mn-note").value.trim(),
      field: kind === "override" ? $("#mn-field").value : null });
    e.target.reset();
    await load();
  } catch (err) { $("#mn-error").textContent = err.message; }
});
await guarded(load);
