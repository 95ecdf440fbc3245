import { $, api, boot, chart, clear, fmtMs, fmtNum, fmtTime, guarded, h, table, tabs, toast } from "./app.js";
import { kbReference } from "./qa_evidence.js";

await boot("qa", ["qa_reviewer"]);

// QA endpoints (serving/api/qa.py) and the call's recording and transcript (serving/api/recordings.py)
const ops = {
  calls: (params) => api(`/api/qa/calls?${params}`),
  scoreCall: (callId) => api(`/api/qa/calls/${callId}/score`, { method: "POST" }),
  queue: () => api("/api/qa/queue"),
  results: () => api("/api/qa/results?limit=500"),
  result: (id) => api(`/api/qa/results/${id}`),
  transcript: (callId) => api(`/api/calls/${callId}/transcript`),
  audioUrl: (resultId) => `/api/qa/results/${resultId}/audio`,
  callAudioUrl: (recordingId) => `/api/recordings/${recordingId}/audio`,
  review: (itemId, verdict, comment) => api(`/api/qa/items/${itemId}/review`, { method: "POST", body: { verdict, comment } }),
  finish: (id) => api(`/api/qa/results/${id}/finish`, { method: "POST" }),
  resolve: (id, upheld, comment) => api(`/api/qa/results/${id}/appeal`, { method: "POST", body: { upheld, comment } }),
  overturnRates: () => api("/api/qa/overturn-rates"),
  scorecards: () => api("/api/qa/scorecards"),
  saveScorecard: (definition) => api("/api/qa/scorecards", { method: "POST", body: { definition } }),
  activate: (id) => api(`/api/qa/scorecards/${id}/activate`, { method: "POST" }),
};
const agentNames = new Map((await api("/api/directory/agents")).map((a) => [a.id, `${a.work_no}号 ${a.name}`]));
const agentLabel = (r) => (r.agent_id ? agentNames.get(r.agent_id) || `坐席 #${r.agent_id}` : "—");
const SPEAKER = { caller: "市民", agent: "话务员" };
let current = null;
let segments = [];

// ---------------------------------------------------------------- audio, waveform, transcript that follows playback
const audio = $("#qa-audio");
const canvas = $("#qa-wave");
let peaks = null; // [{agent:Float32Array, caller:Float32Array}] per pixel column

async function loadAudio(url) {
  peaks = null;
  drawWave();
  if (!url) { audio.removeAttribute("src"); return; }
  const res = await api(url, { raw: true });
  const bytes = await res.arrayBuffer();
  audio.src = URL.createObjectURL(new Blob([bytes], { type: res.headers.get("content-type") || "audio/wav" }));
  const ctx = new (window.OfflineAudioContext || window.webkitOfflineAudioContext)(1, 1, 8000);
  const buf = await ctx.decodeAudioData(bytes.slice(0));
  const width = canvas.clientWidth * devicePixelRatio;
  const chans = [buf.getChannelData(0), buf.getChannelData(Math.min(1, buf.numberOfChannels - 1))];
  const per = Math.max(1, Math.floor(buf.length / width));
  peaks = chans.map((data) => {
    const out = new Float32Array(Math.ceil(buf.length / per));
    for (let i = 0, j = 0; i < data.length; i += per, j++) {
      let m = 0;
      for (let k = i; k < Math.min(i + per, data.length); k++) { const v = Math.abs(data[k]); if (v > m) m = v; }
      out[j] = m;
    }
    return out;
  });
  canvas.dataset.peaks = String(peaks[0].length);
  drawWave();
}

function drawWave() {
  const w = (canvas.width = canvas.clientWidth * devicePixelRatio);
  const hgt = (canvas.height = canvas.clientHeight * devicePixelRatio);
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, hgt);
  if (!peaks) return;
  const mid = hgt / 2;
  const colours = ["#4dabf7", "#ffa94d"]; // agent up, caller down
  peaks.forEach((p, c) => {
    g.fillStyle = colours[c];
    const scale = w / p.length;
    for (let x = 0; x < p.length; x++) {
      const y = p[x] * mid * 0.95;
      g.fillRect(x * scale, c === 0 ? mid - y : mid, Math.max(1, scale), y);
    }
  });
  if (audio.duration) {
    g.fillStyle = "#fff";
    g.fillRect((audio.currentTime / audio.duration) * w, 0, 2 * devicePixelRatio, hgt);
  }
}

canvas.addEventListener("click", (e) => {
  if (!audio.duration) return;
  const rect = canvas.getBoundingClientRect();
  seek(((e.clientX - rect.left) / rect.width) * audio.duration * 1000);
});
function seek(ms, play = true) {
  audio.currentTime = ms / 1000;
  if (play) audio.play().catch(() => {});
  follow();
}
function follow() {
  const t = audio.currentTime * 1000;
  for (const el of document.querySelectorAll("#qa-transcript .seg")) {
    const on = t >= Number(el.dataset.start) && t < Number(el.dataset.end);
    if (on && !el.classList.contains("current")) el.scrollIntoView({ block: "nearest" });
    el.classList.toggle("current", on);
  }
  drawWave();
}
audio.addEventListener("timeupdate", follow);
audio.addEventListener("seeked", follow);
new ResizeObserver(drawWave).observe(canvas);

// ---------------------------------------------------------------- the call under review
function renderItems(detail) {
  $("#qa-score").textContent = `得分 ${fmtNum(detail.score, 1)}`;
  clear($("#qa-items"), detail.items.map((item) => {
    const comment = h("input", { id: `cm-${item.id}`, placeholder: "复核意见（推翻时必填）" });
    const verdictBadge = item.verdict ? h("span", { class: `badge ${item.verdict === "overturn" ? "warn" : "ok"}`, "data-testid": "verdict" },
      item.verdict === "overturn" ? "已推翻" : "已确认") : null;
    const evidence = item.evidence || []; // the server lists each piece once
    return h("div", { class: "card qa-item", "data-testid": "qa-item", dataset: { item: item.id, code: item.code } },
      h("div", { class: "row" }, h("strong", { class: item.effective_passed ? "item-pass" : "item-fail" },
        `${item.effective_passed ? "✔" : "✘"} ${item.name}`),
      h("span", { class: `badge ${item.severity === "serious" ? "bad" : ""}` }, item.severity === "serious" ? "严重" : "一般"),
      h("span", { class: "muted" }, `分值 ${item.weight}`), verdictBadge,
      item.needs_review ? h("span", { class: "badge warn", "data-testid": "needs-review" }, "需人工复核") : null),
      evidence.length ? h("ul", {}, evidence.map((ev) => h("li", {},
        ev.start_ms !== undefined ? h("button", { type: "button", class: "link", "data-testid": "evidence", onclick: () => seek(ev.start_ms) }, `▶ ${fmtMs(ev.start_ms)}`) : null,
        " ", ev.text || ev.note || "", kbReference(ev, detail.kb_entries || {})))) : h("p", { class: "muted" }, "无证据片段"),
      h("div", { class: "row" }, h("label", { for: `cm-${item.id}`, class: "inline" }, "意见"), comment,
        h("button", { type: "button", "data-verdict": "confirm", onclick: () => review(item, "confirm", comment.value) }, "确认"),
        h("button", { type: "button", class: "danger", "data-verdict": "overturn", onclick: () => review(item, "overturn", comment.value) }, "推翻")),
      (item.reviews || []).length ? h("p", { class: "muted" }, item.reviews.map((r) => `${fmtTime(r.at)} ${r.verdict === "overturn" ? "推翻" : "确认"}：${r.comment}`).join("；")) : null);
  }));
}

async function review(item, verdict, comment) {
  if (verdict === "overturn" && !comment.trim()) { toast("推翻时请填写复核意见", "error"); $(`#cm-${item.id}`).focus(); return; }
  if (await guarded(() => ops.review(item.id, verdict, comment.trim())) === undefined) return;
  toast(verdict === "overturn" ? "已推翻该项" : "已确认该项", "ok");
  await openResult(current.id, false);
}

async function openResult(id, reloadAudio = true) {
  const detail = await ops.result(id);
  current = detail;
  $("#qa-call").hidden = false;
  $("#qa-items-card").hidden = false;
  $("#qa-finish").disabled = Boolean(detail.superseded_at);
  $("#qc-h").textContent = `通话 #${detail.call_id ?? "—"} · ${agentLabel(detail)} · ${fmtTime(detail.created_at)}`;
  showVersions(detail.versions || [], detail.id);
  renderItems(detail);
  if (!reloadAudio) return;
  showTranscript(detail.call_id ? (await ops.transcript(detail.call_id)).segments : []);
  await loadAudio(detail.recording_id || detail.call_id ? ops.audioUrl(detail.id) : null).catch((e) => toast(`录音加载失败：${e.message}`, "error"));
}

function showVersions(versions, currentId) {
  clear($("#qa-versions"), ...(versions.length > 1 ? ["评分版本：", ...versions.map((v) => h("button", {
    type: "button", class: v.id === currentId ? "primary" : "", "aria-pressed": String(v.id === currentId),
    onclick: () => guarded(() => openResult(v.id, false)) },
  `v${v.version} ${fmtNum(v.score, 1)} 分${v.superseded_at ? "（已被重评）" : "（当前）"}`))] : []));
}

function showTranscript(segs) {
  segments = segs;
  clear($("#qa-transcript"), segments.length ? segments.map((s) => h("div", { class: "seg", dataset: { start: s.start_ms, end: s.end_ms },
    onclick: () => seek(s.start_ms) }, h("span", { class: "muted" }, `${fmtMs(s.start_ms)} ${SPEAKER[s.role || s.speaker_role] || ""}：`), s.text)) : h("p", { class: "muted" }, "无转写"));
}

/** A call without a score yet: its transcript and recording, and a button to score it now. */
async function openUnscored(row) {
  current = null;
  $("#qa-call").hidden = false;
  $("#qa-items-card").hidden = true;
  $("#qc-h").textContent = `通话 #${row.call_id} · ${agentLabel(row)} · ${fmtTime(row.started_at)}（未评分）`;
  clear($("#qa-versions"), h("button", { type: "button", class: "primary", "data-testid": "score-now", onclick: () => guarded(async () => {
    toast("正在评分，请稍候…");
    const detail = await ops.scoreCall(row.call_id);
    toast(`已评分：${fmtNum(detail.score, 1)} 分`, "ok");
    await loadCalls();
    await openResult(detail.id);
  }) }, "立即评分"));
  const call = await ops.transcript(row.call_id);
  showTranscript(call.segments);
  await loadAudio(call.recording_id ? ops.callAudioUrl(call.recording_id) : null).catch((e) => toast(`录音加载失败：${e.message}`, "error"));
}

$("#qa-finish").addEventListener("click", () => guarded(async () => {
  await ops.finish(current.id);
  toast("复核完成", "ok");
  await (location.hash === "#calls" ? loadCalls() : loadQueue());
}));

// ---------------------------------------------------------------- every call: search and filters
const PAGE = 50;
let offset = 0;
function callParams() {
  const v = (sel) => $(sel).value.trim();
  const params = { date_from: v("#qf-from"), date_to: v("#qf-to"), agent_id: v("#qf-agent"), category: v("#qf-category"),
    score_min: v("#qf-min"), score_max: v("#qf-max"), item: v("#qf-item"), q: v("#qf-q"), scored: v("#qf-scored"), offset, limit: PAGE };
  return new URLSearchParams(Object.entries(params).filter(([, x]) => x !== "" && x !== null));
}
const stateBadge = (r) => (r.result ? h("span", { class: `badge ${r.result.review_state === "queued" ? "warn" : r.result.review_state === "reviewed" ? "ok" : ""}` },
  { auto: "自动质检", queued: "待复核", reviewed: "已复核" }[r.result.review_state]) : h("span", { class: "badge" }, "未评分"));

async function loadCalls() {
  const page = await ops.calls(callParams());
  $("#qc-total").textContent = `共 ${page.total} 通，显示第 ${page.total ? offset + 1 : 0}–${offset + page.items.length} 通`;
  $("#qc-prev").disabled = offset === 0;
  $("#qc-next").disabled = offset + page.items.length >= page.total;
  clear($("#qa-calls"), table([{ key: "started_at", label: "时间", render: (r) => fmtTime(r.started_at) },
    { key: "call_id", label: "通话" }, { key: "agent_id", label: "坐席", render: agentLabel },
    { key: "category", label: "分类", render: (r) => r.category || "—" },
    { key: "score", label: "得分", render: (r) => (r.result ? fmtNum(r.result.score, 1) : "—") },
    { key: "versions", label: "版本", render: (r) => (r.versions.length ? `v${r.versions[r.versions.length - 1].version}${r.versions.length > 1 ? `（共 ${r.versions.length} 版）` : ""}` : "—") },
    { key: "failed", label: "未通过项", render: (r) => (r.result ? [
      (r.result.needs_review || []).length ? h("span", { class: "badge warn" }, "需人工复核") : null, " ",
      (r.result.failed_items || []).join("、")] : "") },
    { key: "state", label: "状态", render: stateBadge }],
  page.items, { testid: "qa-calls", empty: "没有符合条件的通话", onRow: (r) => guarded(() => (r.result ? openResult(r.result.id) : openUnscored(r))) }));
}
$("#qc-filter").addEventListener("submit", (e) => { e.preventDefault(); offset = 0; guarded(loadCalls); });
$("#qc-filter").addEventListener("reset", () => setTimeout(() => { offset = 0; guarded(loadCalls); }));
$("#qc-prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); guarded(loadCalls); });
$("#qc-next").addEventListener("click", () => { offset += PAGE; guarded(loadCalls); });
for (const [id, name] of agentNames) $("#qf-agent").append(h("option", { value: id }, name));
ops.scorecards().then((all) => { // the item filter offers the active scorecard's items
  const active = all.find((c) => c.active) || all[0];
  for (const item of (active && active.definition.items) || []) $("#qf-item").append(h("option", { value: item.code }, item.name));
}).catch(() => {});
api("/api/knowledge/taxonomy").then((t) => { // the category filter offers the taxonomy's categories (any level)
  const names = [...new Set(t.paths.flatMap((p) => p.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"))))];
  document.body.append(h("datalist", { id: "qf-categories" }, names.map((n) => h("option", { value: n }))));
  $("#qf-category").setAttribute("list", "qf-categories");
}).catch(() => {});

async function loadQueue() {
  const rows = await ops.queue();
  $("#count-queue").textContent = String(rows.length);
  clear($("#qa-queue"), table([{ key: "id", label: "编号" }, { key: "agent_id", label: "坐席", render: agentLabel },
    { key: "score", label: "得分", render: (r) => fmtNum(r.score, 1) },
    { key: "failed_items", label: "未通过项", render: (r) => (r.failed_items || []).join("、") },
    { key: "flags", label: "严重问题", render: (r) => [r.serious_service_violation ? h("span", { class: "badge bad" }, "服务") : null,
      r.serious_answer_error ? h("span", { class: "badge bad" }, "答复") : null] },
    { key: "created_at", label: "时间", render: (r) => fmtTime(r.created_at) }],
  rows, { testid: "qa-queue", empty: "没有待复核的通话", onRow: (r) => guarded(() => openResult(r.id)) }));
}

// ---------------------------------------------------------------- appeals, statistics, scorecards
async function loadAppeals() {
  const rows = (await ops.results()).filter((r) => r.agent_state === "appealed");
  $("#count-appeals").textContent = String(rows.length);
  clear($("#qa-appeals"), table([{ key: "id", label: "编号" }, { key: "agent_id", label: "坐席", render: agentLabel },
    { key: "score", label: "得分", render: (r) => fmtNum(r.score, 1) },
    { key: "failed_items", label: "扣分项", render: (r) => (r.failed_items || []).join("、") },
    { key: "ops", label: "处理", render: (r) => {
      const note = h("input", { "aria-label": "处理意见", placeholder: "处理意见" });
      return h("div", { class: "row" }, note,
        h("button", { type: "button", onclick: () => resolve(r.id, true, note.value) }, "支持申诉"),
        h("button", { type: "button", onclick: () => resolve(r.id, false, note.value) }, "驳回"),
        h("button", { type: "button", class: "link", onclick: () => { document.querySelector("[data-tab=queue]").click(); guarded(() => openResult(r.id)); } }, "查看通话"));
    } }], rows, { empty: "没有待处理的申诉" }));
}
async function resolve(id, upheld, comment) {
  if (await guarded(() => ops.resolve(id, upheld, comment)) !== undefined) { toast("申诉已处理", "ok"); loadAppeals(); }
}

/** Per agent: scored calls, average score (reviewed scores where reviewed), serious problems and appeals. */
function perAgent(results) {
  const by = new Map();
  for (const r of results) {
    const a = by.get(r.agent_id) || { agent_id: r.agent_id, calls: 0, total: 0, serious: 0, appeals: 0, reviewed: 0 };
    a.calls += 1;
    a.total += r.score;
    a.serious += r.serious_service_violation || r.serious_answer_error ? 1 : 0;
    a.appeals += ["appealed", "appeal_upheld", "appeal_rejected"].includes(r.agent_state) ? 1 : 0;
    a.reviewed += r.review_state === "reviewed" ? 1 : 0;
    by.set(r.agent_id, a);
  }
  return [...by.values()].map((a) => ({ ...a, avg_score: a.total / a.calls }));
}

async function loadStats() {
  const [results, items] = await Promise.all([ops.results(), ops.overturnRates()]);
  const agents = perAgent(results);
  chart($("#qa-agent-chart"), { tooltip: { trigger: "axis" }, grid: { left: 50, right: 20, top: 20, bottom: 40 },
    xAxis: { type: "category", data: agents.map(agentLabel) }, yAxis: { type: "value", min: 0, max: 100, name: "平均分" },
    series: [{ type: "bar", data: agents.map((a) => Number(a.avg_score.toFixed(1))), barWidth: 24 }] });
  clear($("#qa-agent-stats"), table([{ key: "agent_id", label: "坐席", render: agentLabel }, { key: "calls", label: "质检通话" },
    { key: "reviewed", label: "已复核" }, { key: "avg_score", label: "平均分", render: (a) => fmtNum(a.avg_score, 1) },
    { key: "serious", label: "严重问题" }, { key: "appeals", label: "申诉" }], agents, { testid: "qa-agent-stats" }));
  clear($("#qa-item-stats"), table([{ key: "item_name", label: "质检项" }, { key: "reviewed", label: "复核数" },
    { key: "overturned", label: "推翻数" }, { key: "overturn_rate", label: "推翻率", render: (s) => `${(100 * s.overturn_rate).toFixed(1)}%` }],
  items, { empty: "暂无复核记录" }));
}

let cards = [];
async function loadScorecards() {
  cards = await ops.scorecards();
  clear($("#sc-select"), cards.map((c, i) => h("option", { value: i }, `${c.definition.title || c.name} 第 ${c.version} 版${c.active ? "（启用中）" : ""}`)));
  showCard();
}
$("#sc-activate").addEventListener("click", () => guarded(async () => {
  const c = cards[Number($("#sc-select").value)];
  await ops.activate(c.id);
  toast(`已启用 ${c.name} v${c.version}`, "ok");
  await loadScorecards();
}));
// the scorecard as a form: its title, each threshold within its range, and per item its name, points, severity,
// description and live reminder; the rule conditions themselves are kept as they are (shown in words)
const SEVERITY_ZH = { minor: "一般", serious: "严重" };
let editing = null; // a deep copy of the definition being edited
function showCard() {
  const c = cards[Number($("#sc-select").value)];
  $("#sc-error").textContent = "";
  editing = c ? JSON.parse(JSON.stringify(c.definition)) : null;
  if (!editing) { clear($("#sc-params")); clear($("#sc-items")); return; }
  $("#sc-title").value = editing.title || "";
  clear($("#sc-params"), table([{ key: "description", label: "参数", render: ([, p]) => p.description || "（无说明）" },
    { key: "value", label: "取值", render: ([name, p]) => h("input", { type: "number", "aria-label": p.description || name, value: p.value,
      min: p.min ?? null, max: p.max ?? null, step: p.step ?? (p.type === "int" ? 1 : "any"), "data-param": name, style: { width: "8em" } }) },
    { key: "range", label: "允许范围", render: ([, p]) => (p.min !== undefined && p.max !== undefined ? `${p.min} – ${p.max}` : "—") }],
  Object.entries(editing.params || {}), { empty: "此评分表没有可调参数" }));
  clear($("#sc-items"), ...editing.items.map((item, i) => h("fieldset", { class: "card qa-item", "data-testid": "sc-item", dataset: { index: i } },
    h("legend", {}, `${i + 1}. ${item.name}`),
    h("div", { class: "form-grid" },
      h("div", {}, h("label", { for: `sci-name-${i}` }, "名称"), h("input", { id: `sci-name-${i}`, value: item.name, "data-field": "name" })),
      h("div", {}, h("label", { for: `sci-weight-${i}` }, "分值"), h("input", { id: `sci-weight-${i}`, type: "number", min: 0, max: 100, step: "any", value: item.weight, "data-field": "weight" })),
      h("div", {}, h("label", { for: `sci-sev-${i}` }, "严重程度"), h("select", { id: `sci-sev-${i}`, "data-field": "severity" },
        Object.entries(SEVERITY_ZH).map(([v, l]) => h("option", { value: v, selected: item.severity === v }, l)))),
      item.live ? h("div", {}, h("label", { for: `sci-live-${i}` }, "实时提醒内容"), h("input", { id: `sci-live-${i}`, value: item.live.message || "", "data-field": "live" })) : null,
      h("div", { class: "wide" }, h("label", { for: `sci-desc-${i}` }, "评分标准说明"), h("textarea", { id: `sci-desc-${i}`, "data-field": "description", style: { minHeight: "3rem" } }, item.description || ""))),
    h("p", { class: "muted" }, `判定方式：${item.require ? "须做到" : "不得出现"}（规则条件由系统维护，修改请联系管理员）`))));
  totalWeight();
}
function totalWeight() {
  const total = [...document.querySelectorAll("#sc-items [data-field=weight]")].reduce((a, el) => a + (Number(el.value) || 0), 0);
  $("#sc-total").textContent = `总分 ${fmtNum(total, 1)}`;
  $("#sc-total").className = `badge ${Math.abs(total - 100) < 1e-6 ? "ok" : "warn"}`;
}
$("#sc-items").addEventListener("input", totalWeight);

/** The definition from the form, or a Chinese message for the first value a person must fix. */
function formDefinition() {
  const def = JSON.parse(JSON.stringify(editing));
  def.title = $("#sc-title").value.trim();
  for (const input of document.querySelectorAll("#sc-params [data-param]")) {
    const p = def.params[input.dataset.param];
    const v = Number(input.value);
    const label = p.description || input.dataset.param;
    if (input.value === "" || Number.isNaN(v)) return { error: `“${label}”请填写数值` };
    if ((p.min !== undefined && v < p.min) || (p.max !== undefined && v > p.max)) return { error: `“${label}”须在 ${p.min} 到 ${p.max} 之间` };
    if (p.type === "int" && !Number.isInteger(v)) return { error: `“${label}”须为整数` };
    p.value = v;
  }
  for (const box of document.querySelectorAll("#sc-items [data-testid=sc-item]")) {
    const item = def.items[Number(box.dataset.index)];
    const get = (f) => box.querySelector(`[data-field=${f}]`);
    item.name = get("name").value.trim();
    if (!item.name) return { error: `第 ${Number(box.dataset.index) + 1} 项的名称不能为空` };
    const w = Number(get("weight").value);
    if (get("weight").value === "" || Number.isNaN(w) || w < 0) return { error: `“${item.name}”的分值须为不小于 0 的数` };
    item.weight = w;
    item.severity = get("severity").value;
    item.description = get("description").value.trim();
    if (item.live && get("live")) item.live.message = get("live").value.trim();
  }
  if (!def.items.some((i) => i.weight > 0)) return { error: "至少有一项须有分值" };
  return { def };
}

$("#sc-save").addEventListener("click", async () => {
  $("#sc-error").textContent = "";
  if (!editing) return;
  const { def, error } = formDefinition();
  if (error) { $("#sc-error").textContent = error; return; }
  try {
    const saved = await ops.saveScorecard(def);
    toast(`已保存 ${saved.title || saved.name} 第 ${saved.version} 版（需启用后生效）`, "ok");
    await loadScorecards();
  } catch (err) { $("#sc-error").textContent = err.message; }
});
$("#sc-select").addEventListener("change", showCard);

const loaders = { calls: loadCalls, queue: loadQueue, appeals: loadAppeals, stats: loadStats, scorecards: loadScorecards };
tabs(document, (name) => guarded(loaders[name]));
if (location.hash !== "#appeals") guarded(loadAppeals); // the badge count
