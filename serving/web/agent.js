import { $, api, boot, clear, connectLive, fmtMs, fmtTime, guarded, h, toast } from "./app.js";

await boot("agent", ["agent"]);

// Telephony and ticket endpoints used by the desk (one place, so the wiring is easy to follow).
const ops = {
  me: () => api("/api/telephony/me"),
  setState: (action) => api("/api/telephony/me/state", { method: "POST", body: { action } }),
  call: (callId, action, body) => api(`/api/telephony/calls/${encodeURIComponent(callId)}/${action}`, { method: "POST", body }),
  history: (phone) => api(`/api/callers/${encodeURIComponent(phone)}/history`),
  // linked to the CDR when the call event carries its database id, manual intake otherwise
  saveTicket: (draft, callDbId, callUuid) => (callDbId
    ? api("/api/tickets/from-call", { method: "POST", body: { call_id: callDbId, draft, confirmed: true } })
    : api("/api/tickets", { method: "POST", body: { draft, note: callUuid ? `来电 ${callUuid}` : "" } })),
  completeTicket: (id, result) => api(`/api/tickets/${id}/actions`, { method: "POST", body: { action: "complete", result } }),
  feedback: (entryId, kind) => api("/api/copilot/feedback", { method: "POST", body: { kind, entry_id: Number(entryId), call_id: call ? call.dbId : null } }),
};

const STATE_ZH = { signed_out: "未签入", signed_in: "已签入", ready: "空闲", not_ready: "置忙", busy: "通话中", acw: "话后整理",
  ringing: "振铃", alerting: "振铃", talking: "通话中", held: "保持中", ended: "已结束" };
const SPEAKER = { caller: "市民", agent: "话务员" };
const DRAFT_FIELDS = ["request_type", "category", "caller_name", "phone", "address", "incident_address", "district", "respondent", "summary"];

let call = null; // {id, caller, state, since, held}
const edited = new Set(); // draft fields the agent typed into: live updates never overwrite them
let kbEntryIds = [];

function showState(state) {
  const pill = $("#agent-state");
  pill.dataset.state = state;
  pill.textContent = STATE_ZH[state] || state;
}

async function changeState(action) {
  const res = await guarded(() => ops.setState(action));
  if (res && res.state) showState(res.state);
}
for (const b of document.querySelectorAll("[data-state-action]")) b.addEventListener("click", () => changeState(b.dataset.stateAction));
ops.me().then((a) => { if (a && a.state) showState(a.state); }).catch(() => {});

// ---------------------------------------------------------------- call panel and controls
function setCallControls() {
  const live = call && call.state !== "ended";
  for (const id of ["#btn-hold", "#btn-transfer", "#btn-conference"]) $(id).disabled = !live;
  $("#btn-hold").textContent = call && call.held ? "恢复" : "保持";
  $("#btn-hold").append(h("kbd", {}, "F8"));
}

setInterval(() => {
  $("#call-timer").textContent = call && call.state !== "ended" ? `通话 ${fmtMs(Date.now() - call.since)}` : "";
}, 1000);

async function showCaller(phone, detail) {
  $("#caller-number").textContent = phone || "—";
  $("#caller-name").textContent = detail.caller_name || detail.name || "—";
  $("#caller-address").textContent = detail.address || "—";
  fillDraft({ phone, caller_name: detail.caller_name || detail.name || "", address: detail.address || "" });
  if (!phone) return;
  const history = await ops.history(phone).catch(() => null);
  if (!history) return;
  if (history.caller_name) $("#caller-name").textContent = history.caller_name;
  if (history.address) $("#caller-address").textContent = history.address;
  fillDraft({ caller_name: history.caller_name, address: history.address });
  clear($("#caller-calls"), (history.calls || []).length
    ? h("ul", { "data-testid": "caller-calls" }, history.calls.map((c) => h("li", {}, `${fmtTime(c.started_at)} ${c.result_label} ${c.agent}`)))
    : "无");
  clear($("#caller-tickets"), (history.tickets || []).length
    ? h("ul", { "data-testid": "caller-tickets" }, history.tickets.map((t) => h("li", { title: t.summary }, `${t.number} ${t.category || ""} · ${t.state_label}`)))
    : "无");
}

function newCall(event) {
  call = { id: event.call_id, dbId: (event.detail || {}).call_db_id || null, caller: event.caller, state: event.state,
    since: Date.now(), held: false };
  clear($("#transcript"));
  clear($("#qa-warnings"));
  clear($("#sensitive-flags"));
  clear($("#suggestions"), h("p", { class: "muted" }, "正在理解市民诉求…"));
  $("#police-alert").hidden = true;
  resetDraft();
  showCaller(event.caller, event.detail || {});
}

function onCallState(event) {
  if (!call || call.id !== event.call_id) {
    if (event.state === "ended") return;
    newCall(event);
  }
  call.state = event.state;
  call.held = event.state === "held";
  showState(event.state === "ended" ? "acw" : event.state);
  setCallControls();
  if (event.state === "ended") toast("通话已结束，请确认并保存工单");
}

async function callAction(action, body) {
  if (!call) return;
  const res = await guarded(() => ops.call(call.id, action, body));
  if (res !== undefined) toast({ hold: "已保持", retrieve: "已恢复通话", transfer: "正在转接", conference: "正在建立三方通话" }[action] || "已执行", "ok");
  return res;
}
$("#btn-hold").addEventListener("click", () => callAction(call && call.held ? "retrieve" : "hold"));
function transfer(kind) {
  const target = $("#transfer-target").value.trim();
  const targetKind = $("#transfer-kind").value;
  if (!target) { $("#transfer-target").focus(); toast("请输入转接目标", "error"); return; }
  if (kind === "conference" && targetKind === "skill") { toast("三方通话只能邀请坐席或外线", "error"); return; }
  callAction(kind, kind === "transfer" ? { mode: "blind", target_kind: targetKind, target } : { target_kind: targetKind, target });
}
$("#btn-transfer").addEventListener("click", () => transfer("transfer"));
$("#btn-conference").addEventListener("click", () => transfer("conference"));
$("#btn-transfer-110").addEventListener("click", () => callAction("transfer", { mode: "blind", target_kind: "external", target: "110" }));

// ---------------------------------------------------------------- transcript: partials settle into finals
function utterance(event, final) {
  return h("div", { class: `utt ${event.leg}${final ? "" : " partial"}`, "data-testid": final ? "utt-final" : "utt-partial",
    dataset: { leg: event.leg, start: event.start_ms } },
  h("div", { class: "meta" }, `${SPEAKER[event.leg] || event.leg} · ${fmtMs(event.start_ms)}`), h("div", { class: "text" }, event.text));
}

function onTranscript(event, final) {
  if (!call) newCall({ call_id: event.call_id, state: "talking", caller: "" });
  const box = $("#transcript");
  const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
  const partial = box.querySelector(`.utt.partial[data-leg="${event.leg}"]`);
  const el = utterance(event, final);
  if (partial) partial.replaceWith(el);
  else box.append(el);
  if (final) { // keep finals in time order
    const later = [...box.querySelectorAll(".utt:not(.partial)")].find((u) => u !== el && Number(u.dataset.start) > event.start_ms);
    if (later) box.insertBefore(el, later);
  }
  if (stick) box.scrollTop = box.scrollHeight;
}

// ---------------------------------------------------------------- suggestions and the ticket draft
function highlight(text, spans) {
  const parts = [text];
  for (const span of (spans || []).filter((s) => s && s.length > 1)) {
    for (let i = 0; i < parts.length; i++) {
      if (typeof parts[i] !== "string") continue;
      const at = parts[i].indexOf(span);
      if (at >= 0) {
        parts.splice(i, 1, parts[i].slice(0, at), h("mark", {}, span), parts[i].slice(at + span.length));
        i++;
      }
    }
  }
  return parts.filter((p) => p !== "");
}

function copyToTicket(hit) {
  const field = $("#tk-result");
  const text = hit.key_facts && hit.key_facts.length ? hit.key_facts.join("；") : hit.answer;
  field.value = field.value ? `${field.value}\n${text}` : text;
  edited.add("result");
  const id = Number(hit.entry_id);
  if (Number.isInteger(id) && !kbEntryIds.includes(id)) kbEntryIds.push(id);
  field.classList.add("flash");
  setTimeout(() => field.classList.remove("flash"), 1200);
  navigator.clipboard?.writeText(text).catch(() => {});
  if (Number.isInteger(id)) ops.feedback(id, "used").catch(() => {});
}

function onSuggestion(event) {
  $("#sg-category").textContent = event.category ? `${event.category} ${Math.round((event.category_confidence || 0) * 100)}%` : "";
  const hits = event.hits || [];
  clear($("#suggestions"), event.no_good_match || !hits.length
    ? h("p", { class: "muted", "data-testid": "no-match" }, "知识库中没有足够匹配的条目，请按流程记录诉求。")
    : hits.map((hit, i) => h("article", { class: "suggestion", "data-testid": "suggestion", dataset: { entry: hit.entry_id } },
      h("span", { class: "score", title: "匹配度" }, `匹配 ${(hit.score * 100).toFixed(0)}%`),
      h("h3", {}, hit.title),
      hit.key_facts && hit.key_facts.length ? h("ul", { class: "facts" }, hit.key_facts.map((f) => h("li", {}, h("mark", {}, f)))) : null,
      h("p", {}, highlight(hit.answer, hit.matched_spans)),
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary", "data-testid": "copy-to-ticket", onclick: () => copyToTicket(hit) },
          "复制到工单", i === 0 ? h("kbd", {}, "Alt+C") : null),
        h("button", { type: "button", onclick: (e) => { ops.feedback(hit.entry_id, "unhelpful").catch(() => {}); e.target.disabled = true; e.target.textContent = "已反馈"; } }, "不相关")))));
  if (event.category && !event.ticket_draft?.category) fillDraft({ category: event.category });
  fillDraft(event.ticket_draft || {});
}

function fillDraft(draft) {
  for (const [key, value] of Object.entries(draft)) {
    const el = $(`#tk-${key}`);
    if (!el || edited.has(key) || value === undefined || value === null || value === "") continue;
    if (el.value !== String(value)) {
      el.value = value;
      el.classList.add("flash");
      setTimeout(() => el.classList.remove("flash"), 1200);
    }
  }
  if (Array.isArray(draft.kb_entry_ids)) for (const id of draft.kb_entry_ids) if (!kbEntryIds.includes(id)) kbEntryIds.push(id);
}

function resetDraft() {
  $("#ticket-form").reset();
  edited.clear();
  kbEntryIds = [];
  $("#tk-error").textContent = "";
  $("#tk-saved").textContent = "";
}

$("#ticket-form").addEventListener("input", (e) => { if (e.target.name) edited.add(e.target.name); });
$("#btn-reset-ticket").addEventListener("click", resetDraft);
$("#ticket-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#tk-error").textContent = "";
  const body = Object.fromEntries(DRAFT_FIELDS.map((k) => [k, $(`#tk-${k}`).value.trim()]));
  if (!body.summary) { $("#tk-error").textContent = "请填写诉求内容"; $("#tk-summary").focus(); return; }
  body.kb_entry_ids = kbEntryIds;
  try {
    const ticket = await ops.saveTicket(body, call && call.dbId, call && call.id);
    const result = $("#tk-result").value.trim();
    if (result) await ops.completeTicket(ticket.id, result);
    $("#tk-saved").textContent = `已保存工单 ${ticket.number}${result ? "（已办结）" : ""}`;
    $("#tk-saved").dataset.testid = "ticket-saved";
    $("#tk-saved").dataset.number = ticket.number;
    toast(`工单 ${ticket.number} 已保存`, "ok");
  } catch (err) {
    const fields = err.detail && err.detail.fields;
    $("#tk-error").textContent = fields ? fields.map((f) => `${f.field.split(".").pop()}：${f.message}`).join("；") : err.message;
  }
});

// ---------------------------------------------------------------- alerts
function onPolice(event) {
  $("#police-reason").textContent = event.reason;
  $("#police-evidence").textContent = event.evidence;
  $("#police-alert").hidden = false;
}
const FLAG_ZH = { self_harm: "自伤风险", media_threat: "扬言曝光", group_petition: "群体性诉求" };
function onSensitive(event) {
  $("#sensitive-flags").append(h("div", { class: "qa-warn", role: "alert", "data-testid": "sensitive" },
    h("strong", {}, FLAG_ZH[event.flag] || event.flag), "：", event.evidence, "（请按应急流程处理并报告班长）"));
}
function onQaWarning(event) {
  const box = $("#qa-warnings");
  if ([...box.children].some((c) => c.dataset.item === event.item)) return;
  box.append(h("div", { class: "qa-warn", "data-testid": "qa-warning", dataset: { item: event.item } }, `质检提醒：${event.message}`));
}

const handlers = {
  "call.state": onCallState,
  "transcript.partial": (e) => onTranscript(e, false),
  "transcript.final": (e) => onTranscript(e, true),
  "copilot.suggestion": onSuggestion,
  "copilot.police_alert": onPolice,
  "copilot.sensitive": onSensitive,
  "qa.warning": onQaWarning,
};
connectLive("/ws/agent", (event) => {
  if (call && event.call_id && event.call_id !== call.id && event.kind !== "call.state") return;
  const handler = handlers[event.kind];
  if (handler) handler(event);
}, (status) => {
  const badge = $("#live-status");
  badge.textContent = status === "open" ? "实时已连接" : "实时已断开，重连中";
  badge.className = `badge ${status === "open" ? "ok" : "bad"}`;
  badge.dataset.status = status;
});

// ---------------------------------------------------------------- agent-to-agent messages
let lastMessage = 0;
async function pollMessages() {
  const res = await api(`/api/telephony/messages?after_id=${lastMessage}`);
  for (const m of res.messages) {
    lastMessage = Math.max(lastMessage, m.id);
    $("#messages").append(h("p", { "data-testid": "message" }, h("span", { class: "muted" }, `${fmtTime(m.sent_at)} ${m.from_work_no}号：`), m.text));
    $("#messages").scrollTop = $("#messages").scrollHeight;
  }
}
$("#msg-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const to = $("#msg-to").value.trim();
  const text = $("#msg-text").value.trim();
  if (!to || !text) { toast("请填写工号和内容", "error"); return; }
  if (await guarded(() => api("/api/telephony/messages", { method: "POST", body: { to_work_no: to, text } })) !== undefined) {
    $("#messages").append(h("p", { class: "muted" }, `我 → ${to}号：${text}`));
    $("#msg-text").value = "";
  }
});
pollMessages().catch(() => {});
setInterval(() => pollMessages().catch(() => {}), 10000);

// ---------------------------------------------------------------- keyboard shortcuts
document.addEventListener("keydown", (e) => {
  const keys = {
    "Alt+1": () => changeState("sign_in"), "Alt+2": () => changeState("ready"), "Alt+3": () => changeState("not_ready"),
    "Alt+4": () => changeState("sign_out"), F8: () => $("#btn-hold").click(), F9: () => $("#btn-transfer").click(),
    F10: () => $("#btn-conference").click(), F12: () => { if (!$("#police-alert").hidden) $("#btn-transfer-110").click(); },
    "Alt+c": () => $("[data-testid=copy-to-ticket]")?.click(), "Ctrl+Enter": () => $("#ticket-form").requestSubmit(),
  };
  const name = `${e.ctrlKey ? "Ctrl+" : ""}${e.altKey ? "Alt+" : ""}${e.key.length === 1 ? e.key.toLowerCase() : e.key}`;
  const action = keys[name];
  if (action) { e.preventDefault(); action(); }
});
setCallControls();
