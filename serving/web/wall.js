import { $, api, boot, clear, connectLive, fmtClock, fmtMs, guarded, h, toast } from "./app.js";

await boot("wall", ["supervisor"]);

const STATE_ZH = { signed_out: "未签入", ready: "空闲", not_ready: "置忙", busy: "通话中", acw: "话后整理",
  alerting: "振铃", talking: "通话中", held: "保持中" };
const MODES = [["monitor", "监听"], ["whisper", "耳语"], ["barge", "强插"]];
const agents = new Map(); // agent id → {work_no, name, state, since, call: {id, caller, last}}
let queues = [];
const callAgent = new Map(); // call id → agent id

function maskPhone(n) { return n && n.length >= 7 ? `${n.slice(0, 3)}****${n.slice(-4)}` : n || ""; }

function tile(id, a) {
  const live = a.call && a.state !== "ready";
  return h("article", { class: "agent-tile", dataset: { state: a.state, agent: id }, "data-testid": "agent-tile" },
    h("div", { class: "row" }, h("strong", {}, `${a.work_no}号 ${a.name}`), h("span", { class: "spacer" }),
      h("span", { class: "badge" }, STATE_ZH[a.state] || a.state)),
    h("div", { class: "muted" }, `已持续 ${fmtMs(Date.now() - a.since)}`),
    live ? [h("div", {}, `来电 ${maskPhone(a.call.caller)}`), a.call.last ? h("div", { class: "muted" }, `“${a.call.last}”`) : null,
      h("div", { class: "row" }, MODES.map(([mode, label]) => h("button", { type: "button", "data-mode": mode,
        onclick: () => join(a.call.id, mode, label) }, label)))] : null);
}

function render() {
  clear($("#wall"), [...agents.entries()].map(([id, a]) => tile(id, a)));
  clear($("#queues"), queues.length
    ? h("table", { class: "grid" }, h("thead", {}, h("tr", {}, h("th", {}, "技能组"), h("th", {}, "排队数"), h("th", {}, "最长等待"))),
      h("tbody", {}, queues.map((q) => h("tr", {}, h("td", {}, q.skill_group), h("td", {}, String(q.waiting)), h("td", {}, fmtMs(q.longest_wait_s * 1000))))))
    : h("p", { class: "muted" }, "当前无排队来电"));
}

async function join(callId, mode, label) {
  const res = await guarded(() => api(`/api/telephony/calls/${encodeURIComponent(callId)}/supervise`, { method: "POST", body: { mode } }));
  if (res !== undefined) toast(`已${label}该通话`, "ok");
}

async function load() {
  const d = await api("/api/reports/dashboard");
  for (const a of d.live.agent_list) {
    const prev = agents.get(a.id) || {};
    agents.set(a.id, { ...prev, work_no: a.work_no, name: a.name, state: prev.call ? prev.state : a.state,
      since: prev.call ? prev.since : new Date(a.state_since).getTime() });
  }
  queues = d.live.queues;
  const t = d.today;
  clear($("#wall-counters"), [["今日呼入", t.offered], ["接通", t.answered], ["接通率", t.answer_rate === null ? "暂无数据" : `${t.answer_rate}%`],
    ["漏话", t.lost], ["平均等待", t.avg_wait_s === null ? "暂无数据" : `${t.avg_wait_s} 秒`], ["满意率", t.satisfaction_rate === null ? "暂无数据" : `${t.satisfaction_rate}%`]]
    .map(([k, v]) => h("div", { class: "card", style: { margin: 0 } }, h("div", { class: "muted" }, k), h("strong", { style: { fontSize: "1.4rem" } }, String(v)))));
  render();
}

// severity by kind: a 110 alert is critical (red), a sensitive call high (orange), a QA reminder a warning (amber)
const SEVERITY = { police: ["critical", "紧急"], sensitive: ["high", "重要"], qa: ["warning", "提醒"] };
const FLAG_ZH = { self_harm: "自伤自杀风险", media_threat: "扬言向媒体曝光", group_petition: "群体上访" };
function alert(text, kind, callId, key, at = new Date(), append = false) {
  const box = $("#alerts");
  if (box.querySelector(".muted")) clear(box);
  const [severity, label] = SEVERITY[kind] || ["warning", "提醒"];
  box[append ? "append" : "prepend"](h("div", { class: `wall-alert ${severity}`, role: severity === "critical" ? "alert" : null,
    "data-testid": "wall-alert", "data-kind": kind, "data-severity": severity, "data-key": key, "data-call": callId },
  h("span", { class: "sev" }, label), ` ${fmtClock(at)} ${text}`));
  while (box.children.length > 30) box.lastChild.remove();
}
function agentOf(agentId) { const a = agents.get(agentId); return a ? `${a.work_no}号 ` : ""; }
// one wording per kind, for live events and for the standing alerts the server lists after a reload
const TEXT = {
  police: (e, agentId) => `${agentOf(agentId)}疑似 110 警情：${e.reason}`,
  sensitive: (e, agentId) => `${agentOf(agentId)}敏感来电（${FLAG_ZH[e.flag] || "需关注"}）：${e.evidence}`,
  qa: (e, agentId) => `${agentOf(agentId)}质检提醒：${e.message}`,
};
async function loadAlerts() {
  const { alerts } = await api("/api/copilot/wall/alerts");
  if (alerts.length) clear($("#alerts")); // the server's list holds what arrived live meanwhile
  for (const a of alerts) alert(TEXT[a.kind](a, a.agent_id), a.kind, a.call_id, a.kind === "qa" ? `${a.call_id}|${a.item}` : undefined, a.at, true);
}

connectLive("/ws/supervisor", (e) => {
  if (e.kind === "call.state") {
    if (e.agent_id !== null && e.agent_id !== undefined && agents.has(e.agent_id)) {
      const a = agents.get(e.agent_id);
      callAgent.set(e.call_id, e.agent_id);
      if (e.state === "ended") { a.call = null; a.state = "acw"; } else { a.call = { ...(a.call || {}), id: e.call_id, caller: e.caller }; a.state = e.state; }
      a.since = Date.now();
    }
    render();
  } else if (e.kind === "transcript.final") {
    const a = agents.get(callAgent.get(e.call_id));
    if (a && a.call) { a.call.last = e.text; render(); }
  } else if (e.kind === "copilot.police_alert") {
    alert(TEXT.police(e, callAgent.get(e.call_id)), "police", e.call_id);
  } else if (e.kind === "copilot.sensitive") {
    alert(TEXT.sensitive(e, callAgent.get(e.call_id)), "sensitive", e.call_id);
  } else if (e.kind === "qa.warning") {
    const key = `${e.call_id}|${e.item}`;
    if (e.resolved) { // the agent met the item after all: the reminder is withdrawn
      for (const el of document.querySelectorAll("#alerts [data-kind=qa]")) if (el.dataset.key === key) el.remove();
      if (!$("#alerts").children.length) clear($("#alerts"), h("p", { class: "muted" }, "暂无告警"));
      return;
    }
    alert(TEXT.qa(e, callAgent.get(e.call_id)), "qa", e.call_id, key);
  }
}, (status) => {
  $("#live-status").textContent = status === "open" ? "实时已连接" : "实时已断开，重连中";
  $("#live-status").className = `badge ${status === "open" ? "ok" : "bad"}`;
  $("#live-status").dataset.status = status;
});

await guarded(load);
await guarded(loadAlerts);
setInterval(() => guarded(load), 15000);
setInterval(render, 5000);
