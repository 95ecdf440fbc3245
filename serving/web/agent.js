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
  desk: () => api("/api/copilot/desk"),
  markCard: (callId, entryId, action) => api("/api/copilot/desk/cards", { method: "POST", body: { call_id: callId, entry_id: entryId, action } }),
  saveDraft: (callId, fields) => api("/api/copilot/desk/draft", { method: "PUT", body: { call_id: callId, fields } }),
  feedback: (entryId, kind) => api("/api/copilot/feedback", { method: "POST", body: { kind, entry_id: Number(entryId), call_id: call ? call.dbId : null } }),
};

const STATE_ZH = { signed_out: "未签入", signed_in: "已签入", ready: "空闲", not_ready: "置忙", busy: "通话中", acw: "话后整理",
  ringing: "振铃", alerting: "振铃", talking: "通话中", held: "保持中", ended: "已结束" };
const SPEAKER = { caller: "市民", agent: "话务员" };
const DRAFT_FIELDS = ["request_type", "category", "caller_name", "phone", "address", "incident_address", "district", "respondent", "summary"];

let call = null; // {id, caller, state, since, held}
const edited = new Set(); // draft fields the agent typed into: live updates never overwrite them
let kbEntryIds = [];
let cards = []; // the call's suggestion cards (KnowledgeHit dicts), newest first
let marks = { pinned: [], dismissed: [] }; // entry ids (strings) the agent pinned or dismissed

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
  cards = [];
  marks = { pinned: [], dismissed: [] };
  clear($("#suggestions"), h("p", { class: "muted" }, "正在理解市民诉求…"));
  $("#police-alert").hidden = true;
  $("#desk-restored").hidden = true; // a restore shows it again once the call is back
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
  const same = final && box.querySelector(`.utt:not(.partial)[data-leg="${event.leg}"][data-start="${event.start_ms}"]`);
  const partial = box.querySelector(`.utt.partial[data-leg="${event.leg}"]`);
  const el = utterance(event, final);
  if (same) same.replaceWith(el);
  else if (partial) partial.replaceWith(el);
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
  markEdited("result");
  const id = Number(hit.entry_id);
  if (Number.isInteger(id) && !kbEntryIds.includes(id)) kbEntryIds.push(id);
  field.classList.add("flash");
  setTimeout(() => field.classList.remove("flash"), 1200);
  navigator.clipboard?.writeText(text).catch(() => {});
  if (Number.isInteger(id)) ops.feedback(id, "used").catch(() => {});
}

// The card stack: the server keeps every card the call brought up (newest first, with the phrase that brought it);
// the agent pins or dismisses cards (kept with the call, a dismissal also stored as feedback on the entry).

async function markCard(hit, action) {
  if (!call) return;
  const res = await guarded(() => ops.markCard(call.id, String(hit.entry_id), action));
  if (!res) return;
  marks = res;
  renderCards();
  if (action === "dismiss") toast("已移除该推荐，并记录为“不相关”反馈", "ok");
}

function cardView(hit, first) {
  const pinned = marks.pinned.includes(String(hit.entry_id));
  return h("article", { class: `suggestion${pinned ? " pinned" : ""}`, "data-testid": "suggestion", dataset: { entry: hit.entry_id } },
    h("span", { class: "score", title: "匹配度" }, `匹配 ${(hit.score * 100).toFixed(0)}%`),
    h("h3", {}, pinned ? h("span", { class: "pin-tag" }, "已置顶") : null, hit.title),
    hit.trigger ? h("p", { class: "trigger muted", "data-testid": "card-trigger" },
      `${hit.first_ms != null ? fmtMs(hit.first_ms) + " " : ""}因${hit.trigger_role === "agent" ? "坐席" : "市民"}说“${hit.trigger}”`) : null,
    hit.key_facts && hit.key_facts.length ? h("ul", { class: "facts" }, hit.key_facts.map((f) => h("li", {}, h("mark", {}, f)))) : null,
    h("p", { class: "answer" }, highlight(hit.answer, hit.matched_spans)),
    h("div", { class: "row" },
      h("button", { type: "button", class: "primary", "data-testid": "copy-to-ticket", onclick: () => copyToTicket(hit) },
        "复制到工单", first ? h("kbd", {}, "Alt+C") : null),
      h("button", { type: "button", "data-testid": "pin-card", onclick: () => markCard(hit, pinned ? "unpin" : "pin") },
        pinned ? "取消置顶" : "置顶"),
      h("button", { type: "button", "data-testid": "dismiss-card", title: "移除并反馈为不相关", onclick: () => markCard(hit, "dismiss") }, "移除")));
}

function renderCards() {
  const shown = cards.filter((c) => !marks.dismissed.includes(String(c.entry_id)));
  const rank = (c) => { const i = marks.pinned.indexOf(String(c.entry_id)); return i < 0 ? marks.pinned.length : i; };
  shown.sort((a, b) => rank(a) - rank(b)); // pinned on top (stable: newest first below them)
  clear($("#suggestions"), shown.length
    ? shown.map((hit, i) => cardView(hit, i === 0))
    : h("p", { class: "muted", "data-testid": "no-match" }, call ? "暂未找到足够匹配的知识，请按流程记录诉求。" : "通话中将根据市民诉求自动推荐知识。"));
}

function onSuggestion(event) {
  $("#sg-category").textContent = event.category ? `${event.category} ${Math.round((event.category_confidence || 0) * 100)}%` : "";
  // a turn that matched nothing (garbled, off-topic) adds no card and removes none
  if ((event.hits || []).length) {
    const kept = cards.filter((c) => marks.pinned.includes(String(c.entry_id)) && !event.hits.some((n) => n.entry_id === c.entry_id));
    cards = [...event.hits, ...kept]; // a pinned card stays even if the stack let it go
  }
  renderCards();
  if (event.category && !event.ticket_draft?.category) fillDraft({ category: event.category });
  fillDraft(event.ticket_draft || {});
}

const UNSURE = 0.6; // a copilot field below this confidence is marked 待确认 until the agent confirms or edits it

function markUnsure(key, unsure) {
  const el = $(`#tk-${key}`);
  if (!el) return;
  el.classList.toggle("unconfirmed", unsure);
  const label = document.querySelector(`label[for="tk-${key}"]`);
  let tag = label && label.querySelector(".unsure");
  if (unsure && label && !tag) label.append(h("span", { class: "unsure", "data-testid": "unconfirmed", title: "识别把握不大，请与市民核实" }, "待确认"));
  if (!unsure && tag) tag.remove();
}

function fillDraft(draft) {
  const confidence = draft.confidence || {};
  for (const [key, value] of Object.entries(draft)) {
    const el = $(`#tk-${key}`);
    if (!el || edited.has(key) || value === undefined || value === null || value === "") continue;
    if (el.value !== String(value)) {
      el.value = value;
      el.classList.add("flash");
      setTimeout(() => el.classList.remove("flash"), 1200);
    }
    if (key in confidence) {
      markUnsure(key, confidence[key] < UNSURE);
      el.title = `识别置信度 ${Math.round(confidence[key] * 100)}%`;
    }
  }
  if (Array.isArray(draft.kb_entry_ids)) for (const id of draft.kb_entry_ids) if (!kbEntryIds.includes(id)) kbEntryIds.push(id);
}

// what the agent typed is kept with the call on the server (a reload restores it)
let draftTimer = null;
function markEdited(key) {
  edited.add(key);
  markUnsure(key, false);
  if (!call) return;
  clearTimeout(draftTimer);
  const callId = call.id;
  draftTimer = setTimeout(() => {
    const fields = Object.fromEntries([...edited].map((k) => [k, $(`#tk-${k}`).value]));
    ops.saveDraft(callId, fields).catch(() => {});
  }, 400);
}

function resetDraft() {
  $("#ticket-form").reset();
  edited.clear();
  for (const tag of document.querySelectorAll("#ticket-form .unsure")) tag.remove();
  for (const el of document.querySelectorAll("#ticket-form .unconfirmed")) el.classList.remove("unconfirmed");
  kbEntryIds = [];
  $("#tk-error").textContent = "";
  $("#tk-saved").textContent = "";
}

$("#ticket-form").addEventListener("input", (e) => { if (e.target.name) markEdited(e.target.name); });
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
    $("#tk-error").textContent = fields ? fields.map((f) => `${f.label}：${f.message}`).join("；") : err.message;
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
  const shown = [...box.children].find((c) => c.dataset.item === event.item);
  if (event.resolved) { shown?.remove(); return; } // met after all (e.g. the agent read back)
  if (shown) return;
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
function dispatch(event) {
  if (call && event.call_id && event.call_id !== call.id && event.kind !== "call.state") return;
  const handler = handlers[event.kind];
  if (handler) handler(event);
}

// After a reload the server's copy of the call in hand (call link, transcript, cards, draft, alerts) comes back;
// live events that arrive meanwhile are applied after it.
let pending = [];
async function restoreDesk() {
  const desk = await ops.desk().catch(() => null);
  if (!desk || !desk.call) return;
  const c = desk.call;
  newCall({ call_id: c.id, caller: c.caller, state: c.state, detail: { ...c.detail, call_db_id: c.db_id } });
  call.since = c.since * 1000;
  onCallState({ call_id: c.id, state: c.state });
  for (const seg of desk.transcript) onTranscript({ ...seg, call_id: c.id }, true);
  marks = { pinned: desk.pinned, dismissed: desk.dismissed };
  if (desk.suggestion) onSuggestion(desk.suggestion);
  else renderCards();
  if (desk.police) onPolice(desk.police);
  for (const flag of desk.flags) onSensitive(flag);
  for (const warning of desk.warnings) onQaWarning(warning);
  for (const [key, value] of Object.entries(desk.draft_edits)) {
    const el = $(`#tk-${key}`);
    if (el) { el.value = value; edited.add(key); markUnsure(key, false); }
  }
  $("#desk-restored").hidden = false;
}
restoreDesk().finally(() => {
  const queued = pending;
  pending = null;
  queued.forEach(dispatch);
});

connectLive("/ws/agent", (event) => {
  if (pending) pending.push(event);
  else dispatch(event);
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
