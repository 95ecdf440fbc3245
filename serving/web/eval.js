import { $, api, boot, chart, clear, fmtNum, fmtTime, guarded, h, table, toast } from "./app.js";

await boot("eval", ["evaluator"]);

const STATE_ZH = { running: "运行中", done: "已完成", failed: "失败" };
// metric names as people read them: each part of a result's dotted key, in Chinese (the key stays in the tooltip)
const METRIC_ZH = {
  cer: "字错误率", wer: "词错误率", final_cer: "最终字错误率", der: "说话人分离错误率", rtf: "实时率", accuracy: "准确率",
  precision: "精确率", recall: "召回率", macro_f1: "宏平均 F1", f1: "F1", items: "条数", calls: "通话数", legs: "通话腿数",
  audio_seconds: "音频时长（秒）", wall_seconds: "耗时（秒）", reference_s: "参考时长（秒）", seconds: "秒数", cores: "CPU 核数",
  machine_cores: "机器核数", cpu_seconds: "CPU 时间（秒）", cpu_ms_p50: "CPU 耗时 P50（毫秒）", cpu_ms_p95: "CPU 耗时 P95（毫秒）",
  latency_ms_p50: "延迟 P50（毫秒）", latency_ms_p95: "延迟 P95（毫秒）", p50: "P50", p95: "P95", p99: "P99",
  final_latency_p50_s: "终稿延迟 P50（秒）", final_latency_p95_s: "终稿延迟 P95（秒）", partial_interval_p95_s: "中间结果间隔 P95（秒）",
  partials: "中间结果数", tp: "命中", fp: "误报", fn: "漏报", missed_s: "漏检时长（秒）", false_alarm_s: "误检时长（秒）",
  confusion_s: "混淆时长（秒）", ref_chars: "参考字数", engine: "识别引擎", device: "设备", mode: "模式", folds: "折数",
  n_test: "测试条数", out_of_fold: "折外", in_sample: "样本内", fitted: "已拟合", not_fitted_here: "未在此拟合", per_item: "逐条",
  per_call: "逐通", police_110: "110 警情", answer_errors: "答复错误", kb: "知识库", kb_entries: "知识库条目", hotwords: "热词",
  rated_legs: "评测通话腿", rated_legs_per_core: "每核通话腿", legs_per_core: "每核通话腿", failed: "失败数", data: "数据",
  rtp_received_by_bridge: "网桥收到 RTP 包", rtp_lost_at_bridge: "网桥丢失 RTP 包", jitter_buffer_discards_at_bridge: "抖动缓冲丢弃",
  sent_by_ua: "终端发送", forked_frames: "分流帧", followers: "跟随者", speech_ranker: "口语排序器", caller: "市民", agent: "话务员",
  card_present_at_hangup: "挂机时正确卡片在场率", time_to_first_card_s: "首次出现正确卡片用时（秒）", top1: "首位命中率",
  top3: "前三命中率", mrr: "平均倒数排名", ndcg: "NDCG", hit_rate: "命中率", throughput: "吞吐量", messages: "消息数",
  per_second: "每秒", total: "合计", mean: "平均", median: "中位数", max: "最大", min: "最小", count: "数量", note: "说明",
  n_train: "训练条数", n_queries: "查询条数", seed: "随机种子", shipped_model: "随产品发布的模型", shipped: "随产品发布",
  majority_class_accuracy: "多数类基线准确率", how: "方法说明", train_seconds: "训练耗时（秒）", level1: "一级分类",
  full_path: "完整分类路径", category_accuracy: "分类准确率", category_level1_accuracy: "一级分类准确率",
  category_level3_accuracy: "三级分类准确率", request_type_accuracy: "诉求类型准确率", role_accuracy: "角色判断准确率",
  qa_item_agreement: "质检项一致率", item_agreement: "逐项一致率", compliance_label_agreement: "合规标注一致率",
  answer_errors_needing_review: "需复核的答复错误", items_needing_review: "需复核的质检项", on_labelled_errors: "其中标注为错误",
  labelled_failed: "其中标注为未通过", error_level: "按错误计", call_level: "按通话计", kb_recall_at_3: "知识条目前三召回率",
  transfer_check_agreement: "转接检查一致率", handling_agreement: "处置一致率", greeting: "开头语", closing: "结束语",
  read_back: "复述诉求", answer_accuracy: "解答准确", speech: "语音识别", retrieval: "检索方式", model: "模型",
  benchmark: "评测基准", threshold: "阈值", curve: "曲线", strict: "严格口径", same_question: "同题视为命中",
  card_precision: "卡片精确率", cards_per_call: "每通卡片数", kb_card_present_at_hang_up: "挂机时正确卡片在场率",
  kb_first_right_card_s_p50: "首张正确卡片用时 P50（秒）", kb_first_right_card_s_p90: "首张正确卡片用时 P90（秒）",
  no_good_match_rate: "无合适匹配比例", trained_on: "训练数据", window: "窗口", steps: "负载档位", nodes: "节点数",
  cpu_cost: "CPU 成本", cpu_per_audio_second: "每秒音频 CPU 时间", cpu_s_per_call_s: "每秒通话 CPU 时间", rated_load_passed: "额定负载通过",
  load_average_1m_at_start: "开始时 1 分钟负载", partial_interval_p50_s: "中间结果间隔 P50（秒）", partial_interval_max_s: "中间结果最大间隔（秒）",
  partials_delayed: "延迟的中间结果", worst_write_lag_s: "最大写入滞后（秒）", finals: "终稿数", completed: "完成数", dropped: "掉线数",
  asr_backlog_s_max: "识别积压最大值（秒）", lag_s: "滞后（秒）", qa_seconds: "质检耗时（秒）", qa_cpu_seconds: "质检 CPU 时间（秒）",
  transcripts_reused: "复用已有转写", fitted_values: "拟合取值", kept_in_sample: "样本内保留", error: "错误", errors: "错误数",
  queries: "查询", labels: "标签数", domain: "领域", channel: "信道", decoding: "解码方式", beam_size: "束宽", embedder: "向量模型",
};
// a server path says nothing to an evaluator and tells where files lie: shown as its last part
const showValue = (v) => (typeof v === "string" && /^\/[^\s]*\//.test(v) ? `…/${v.split("/").filter(Boolean).pop()}` : v);
const metricLabel = (key) => key.split(".").map((part) => METRIC_ZH[part] || METRIC_ZH[part.toLowerCase()] || part).join(" · ");
let datasets = [];
let benchmarks = [];
let selected = [];
let poller = null;

// ---------------------------------------------------------------- reading any benchmark's JSON
/** Scalar leaves of a result as [{metric, value}] with dotted paths; lists are summarised by length. */
function flatten(obj, prefix = "", out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else if (Array.isArray(v)) out.push({ metric: key, value: `（${v.length} 项）` });
    else out.push({ metric: key, value: showValue(v) });
  }
  return out;
}

/** Arrays of objects anywhere in the result (per-item rows). */
function itemLists(obj, depth = 0, out = []) {
  if (!obj || typeof obj !== "object" || depth > 3) return out;
  for (const v of Object.values(obj)) {
    if (Array.isArray(v) && v.length && typeof v[0] === "object" && v[0] !== null) out.push(v);
    else if (v && typeof v === "object") itemLists(v, depth + 1, out);
  }
  return out;
}

function perItemCer(result) {
  for (const list of itemLists(result)) {
    const key = Object.keys(list[0]).find((k) => /^(cer|wer|error_rate)$/i.test(k));
    if (key) return list.map((it, i) => ({ name: String(it.id ?? it.name ?? it.utt_id ?? it.file ?? i + 1), value: it[key] }));
  }
  return [];
}

function latencies(result) {
  const values = [];
  const visit = (obj, depth) => {
    if (!obj || typeof obj !== "object" || depth > 4) return;
    for (const [k, v] of Object.entries(obj)) {
      if (/latenc|_ms$/i.test(k) && Array.isArray(v)) values.push(...v.filter((x) => typeof x === "number"));
      else if (Array.isArray(v)) for (const it of v) {
        if (it && typeof it === "object") for (const [ik, iv] of Object.entries(it)) if (/latenc|_ms$/i.test(ik) && typeof iv === "number") values.push(iv);
      }
      else if (typeof v === "object") visit(v, depth + 1);
    }
  };
  visit(result, 0);
  return values;
}

/** Latency summaries most benchmarks report (p50/p95/… as scalar metrics). */
function latencyScalars(result) {
  return flatten(result).filter((r) => /latenc/i.test(r.metric) && typeof r.value === "number");
}

function histogram(values, bins = 20) {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const width = (hi - lo) / bins || 1;
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / width))] += 1;
  return { x: counts.map((_, i) => `${Math.round(lo + i * width)}`), counts };
}

const metricCell = (r) => h("span", { title: r.metric }, metricLabel(r.metric));

/** Why a run produced no result, in words (the benchmark's own message where it printed one). */
function failureText(run) {
  if (run.state === "running") return "评测仍在运行";
  const lines = (run.log_tail || "").split("\n").map((l) => l.replace(/[│╭╮╰╯─]/g, "").trim());
  const box = lines.map((l) => /^(Error|错误)$/.test(l)).lastIndexOf(true); // the command's error box, wrapped over lines
  const said = lines.filter((l) => /[\u4e00-\u9fff]/.test(l) && !/^(Traceback|File |Usage:)/.test(l));
  const reason = (box >= 0 ? lines.slice(box + 1).filter(Boolean).join("") : said[said.length - 1] || "")
    .replace(/^(Error|错误)[:：]\s*/, "").replace(/^Invalid value( for [^:]+)?:\s*/, "");
  if (run.returncode === -15 || run.returncode === -9) return "评测已被取消";
  return reason ? `评测未能完成：${reason}` : `评测未能完成（退出码 ${run.returncode ?? "未知"}），请查看技术日志或联系运维人员`;
}

function showReport(run) {
  $("#eval-report").hidden = false;
  $("#eval-report-title").textContent = `${run.benchmark} · ${fmtTime(run.started_at)} · ${STATE_ZH[run.state] || run.state}`;
  const result = run.result || {};
  const cer = perItemCer(result);
  if (cer.length) {
    chart($("#eval-cer-chart"), { tooltip: { trigger: "axis" }, grid: { left: 50, right: 20, top: 20, bottom: 60 },
      xAxis: { type: "category", data: cer.map((c) => c.name), axisLabel: { rotate: 45 } }, yAxis: { type: "value", name: "CER" },
      dataZoom: cer.length > 60 ? [{ type: "slider" }] : [], series: [{ type: "bar", data: cer.map((c) => c.value) }] });
  } else clear($("#eval-cer-chart"), h("p", { class: "muted" }, "该评测没有逐条 CER"));
  const lat = latencies(result);
  if (lat.length) {
    const hist = histogram(lat);
    chart($("#eval-latency-chart"), { tooltip: { trigger: "axis" }, grid: { left: 50, right: 20, top: 20, bottom: 40 },
      xAxis: { type: "category", data: hist.x, name: "毫秒" }, yAxis: { type: "value", name: "次数" },
      series: [{ type: "bar", data: hist.counts, barCategoryGap: "5%" }] });
  } else if (latencyScalars(result).length) {
    const lat2 = latencyScalars(result);
    chart($("#eval-latency-chart"), { tooltip: { trigger: "axis" }, grid: { left: 60, right: 20, top: 20, bottom: 90 },
      xAxis: { type: "category", data: lat2.map((r) => metricLabel(r.metric)), axisLabel: { rotate: 30 } }, yAxis: { type: "value" },
      series: [{ type: "bar", data: lat2.map((r) => r.value), barWidth: 28 }] });
  } else clear($("#eval-latency-chart"), h("p", { class: "muted" }, "该评测没有延迟数据"));
  if (!run.result) { // a failed run: what happened in words; the technical log only on request
    clear($("#eval-metrics"), h("p", { class: "qa-warn", "data-testid": "eval-failure" }, failureText(run)),
      run.log_tail ? h("details", {}, h("summary", {}, "技术日志（供运维排查）"), h("pre", { class: "scroll", style: { maxHeight: "30vh" } }, run.log_tail)) : null);
    return;
  }
  clear($("#eval-metrics"), table([{ key: "metric", label: "指标", render: metricCell },
    { key: "value", label: "值", render: (r) => fmtNum(r.value, 4) }], flatten(run.result), { testid: "eval-metrics" }));
}

async function compare() {
  const [a, b] = await Promise.all(selected.map((id) => api(`/api/evaluations/runs/${id}`)));
  const fa = Object.fromEntries(flatten(a.result || {}).map((r) => [r.metric, r.value]));
  const fb = Object.fromEntries(flatten(b.result || {}).map((r) => [r.metric, r.value]));
  const keys = [...new Set([...Object.keys(fa), ...Object.keys(fb)])];
  const rows = keys.map((k) => ({ metric: k, a: fa[k], b: fb[k],
    delta: typeof fa[k] === "number" && typeof fb[k] === "number" ? fb[k] - fa[k] : null }));
  $("#eval-report").hidden = false;
  $("#eval-report-title").textContent = `对比：A = ${a.benchmark} ${fmtTime(a.started_at)} ｜ B = ${b.benchmark} ${fmtTime(b.started_at)}`;
  const cerA = perItemCer(a.result || {});
  const cerB = perItemCer(b.result || {});
  if (cerA.length || cerB.length) {
    const names = [...new Set([...cerA, ...cerB].map((c) => c.name))];
    const pick = (list) => names.map((n) => (list.find((c) => c.name === n) || {}).value ?? null);
    chart($("#eval-cer-chart"), { tooltip: { trigger: "axis" }, legend: {}, grid: { left: 50, right: 20, top: 30, bottom: 60 },
      xAxis: { type: "category", data: names, axisLabel: { rotate: 45 } }, yAxis: { type: "value", name: "CER" },
      series: [{ name: "A", type: "bar", data: pick(cerA) }, { name: "B", type: "bar", data: pick(cerB) }] });
  } else clear($("#eval-cer-chart"), h("p", { class: "muted" }, "两次评测都没有逐条 CER"));
  const la = latencies(a.result || {});
  const lb = latencies(b.result || {});
  if (la.length || lb.length) {
    const q = (v, p) => { const s = [...v].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null; };
    chart($("#eval-latency-chart"), { tooltip: { trigger: "axis" }, legend: {}, xAxis: { type: "category", data: ["P50", "P90", "P99", "最大"] },
      yAxis: { type: "value", name: "毫秒" }, series: [
        { name: "A", type: "bar", data: [q(la, 0.5), q(la, 0.9), q(la, 0.99), q(la, 1)] },
        { name: "B", type: "bar", data: [q(lb, 0.5), q(lb, 0.9), q(lb, 0.99), q(lb, 1)] }] });
  } else if (latencyScalars(a.result || {}).length || latencyScalars(b.result || {}).length) {
    const names = [...new Set([...latencyScalars(a.result || {}), ...latencyScalars(b.result || {})].map((r) => r.metric))];
    const pick = (values) => names.map((n) => values[n] ?? null);
    chart($("#eval-latency-chart"), { tooltip: { trigger: "axis" }, legend: {}, grid: { left: 60, right: 20, top: 30, bottom: 90 },
      xAxis: { type: "category", data: names.map(metricLabel), axisLabel: { rotate: 30 } }, yAxis: { type: "value" },
      series: [{ name: "A", type: "bar", data: pick(fa) }, { name: "B", type: "bar", data: pick(fb) }] });
  } else clear($("#eval-latency-chart"), h("p", { class: "muted" }, "两次评测都没有延迟数据"));
  clear($("#eval-metrics"), table([{ key: "metric", label: "指标", render: metricCell }, { key: "a", label: "A", render: (r) => fmtNum(r.a, 4) },
    { key: "b", label: "B", render: (r) => fmtNum(r.b, 4) },
    { key: "delta", label: "B − A", render: (r) => (r.delta === null ? "" : (r.delta > 0 ? "+" : "") + fmtNum(r.delta, 4)) }],
  rows, { testid: "eval-compare" }));
}

// ---------------------------------------------------------------- runs
async function loadRuns() {
  const runs = await api("/api/evaluations/runs");
  selected = selected.filter((id) => runs.some((r) => r.id === id));
  $("#eval-compare").disabled = selected.length !== 2;
  clear($("#eval-runs"), table([
    { key: "pick", label: "对比", render: (r) => h("input", { type: "checkbox", "aria-label": `选择 ${r.id}`, checked: selected.includes(r.id),
      onclick: (e) => { e.stopPropagation(); toggle(r.id, e.target.checked); } }) },
    { key: "benchmark", label: "基准" }, { key: "started_at", label: "开始时间", render: (r) => fmtTime(r.started_at) },
    { key: "state", label: "状态", render: (r) => h("span", { class: `badge ${r.state === "done" ? "ok" : r.state === "failed" ? "bad" : "warn"}` }, STATE_ZH[r.state] || r.state) },
    { key: "elapsed_s", label: "用时(秒)" }, { key: "started_by", label: "发起人" },
  ], runs, { testid: "eval-runs", empty: "还没有评测记录", onRow: (r) => guarded(async () => showReport(await api(`/api/evaluations/runs/${r.id}`))) }));
  const running = runs.find((r) => r.state === "running");
  if (running) watch(running.id);
}

function toggle(id, on) {
  selected = on ? [...selected.filter((x) => x !== id), id].slice(-2) : selected.filter((x) => x !== id);
  for (const box of document.querySelectorAll("#eval-runs input[type=checkbox]")) box.checked = selected.some((s) => box.getAttribute("aria-label").endsWith(s));
  $("#eval-compare").disabled = selected.length !== 2;
}
$("#eval-compare").addEventListener("click", () => guarded(compare));

function watch(id) {
  if (poller) return;
  $("#eval-running").hidden = false;
  $("#eval-cancel").hidden = false;
  $("#eval-start").disabled = true;
  $("#eval-cancel").onclick = () => guarded(() => api(`/api/evaluations/runs/${id}/cancel`, { method: "POST" }));
  poller = setInterval(() => guarded(async () => {
    const run = await api(`/api/evaluations/runs/${id}`);
    const p = run.progress;
    const percent = p && p.total ? Math.round((100 * p.done) / p.total) : null;
    $("#eval-running-label").textContent = `${run.benchmark}：${STATE_ZH[run.state]}，已用 ${run.elapsed_s} 秒`;
    $("#eval-progress-text").textContent = percent === null ? "" : `${p.done}/${p.total} ${p.note || ""}`;
    $("#eval-progress").setAttribute("aria-valuenow", String(percent ?? 0));
    $("#eval-progress > div").style.width = `${percent ?? (run.state === "running" ? 5 : 100)}%`;
    if (run.state !== "running") {
      clearInterval(poller);
      poller = null;
      $("#eval-start").disabled = false;
      $("#eval-cancel").hidden = true;
      $("#eval-progress > div").style.width = "100%";
      toast(run.state === "done" ? "评测完成" : "评测失败，原因见下方报告", run.state === "done" ? "ok" : "error");
      showReport(run);
      loadRuns();
    }
  }), 1000);
}

// ---------------------------------------------------------------- the form, generated from each benchmark's options
function renderParams() {
  const bench = benchmarks.find((b) => b.name === $("#eval-benchmark").value);
  $("#eval-help").textContent = bench ? bench.help : "";
  clear($("#eval-params"), bench ? bench.params.map((p) => {
    const id = `param-${p.name}`;
    const input = p.flag
      ? h("input", { id, type: "checkbox", name: p.name, checked: p.default === true, style: { width: "auto" } })
      : p.path
        ? h("select", { id, name: p.name, required: p.required, "data-testid": "dataset" },
          h("option", { value: "" }, p.required ? "请选择数据集" : "（使用默认）"),
          p.names.map((n) => h("option", { value: n }, n)),
          datasets.map((d) => h("option", { value: d.name }, `${d.name}${d.kind === "folder" ? "（数据集目录）" : ""}`)),
          datasets.length ? null : h("option", { value: "", disabled: true }, "（暂无数据集：请管理员放入服务器的评测数据目录）"))
        : h("input", { id, name: p.name, value: p.default ?? "", required: p.required,
        type: ["integer", "float"].includes(p.type) ? "number" : "text", step: p.type === "float" ? "any" : null });
    return h("div", {}, h("label", { for: id }, `${p.help || p.name}${p.required ? "（必填）" : ""}`), input);
  }) : h("p", { class: "muted" }, "尚未注册评测基准"));
}

$("#eval-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#eval-error").textContent = "";
  const args = {};
  for (const input of $("#eval-params").querySelectorAll("input, select")) {
    if (input.type === "checkbox") { if (input.checked) args[input.name] = true; } else if (input.value !== "") args[input.name] = input.value;
  }
  $("#eval-start").disabled = true;
  try {
    const run = await api("/api/evaluations/runs", { method: "POST", body: { benchmark: $("#eval-benchmark").value, args } });
    toast("评测已启动", "ok");
    watch(run.id);
    loadRuns();
  } catch (err) {
    $("#eval-error").textContent = err.message;
    $("#eval-start").disabled = false;
  }
});

[benchmarks, datasets] = await Promise.all([api("/api/evaluations/benchmarks"), api("/api/evaluations/datasets")]);
clear($("#eval-benchmark"), benchmarks.map((b) => h("option", { value: b.name }, b.help ? `${b.name} — ${b.help}` : b.name)));
$("#eval-benchmark").addEventListener("change", renderParams);
renderParams();
await guarded(loadRuns);
