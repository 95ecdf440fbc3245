import { $, api, boot, clear, fmtMs, fmtNum, fmtTime, guarded, h, table, toast } from "./app.js";
import { kbReference } from "./qa_evidence.js";

await boot("myqa", ["agent"]);

const STATE_ZH = { "": "待确认", acknowledged: "已确认", appealed: "申诉中", appeal_upheld: "申诉成立", appeal_rejected: "申诉驳回" };
const REVIEW_ZH = { auto: "自动质检", queued: "待复核", reviewed: "已复核" };
let current = null;

async function load() {
  const rows = await api("/api/qa/results?limit=200");
  clear($("#my-results"), table([{ key: "created_at", label: "时间", render: (r) => fmtTime(r.created_at) },
    { key: "score", label: "得分", render: (r) => fmtNum(r.score, 1) },
    { key: "failed_items", label: "扣分项", render: (r) => (r.failed_items || []).join("、") || "无" },
    { key: "review_state", label: "复核", render: (r) => REVIEW_ZH[r.review_state] || r.review_state },
    { key: "agent_state", label: "我的处理", render: (r) => STATE_ZH[r.agent_state] || r.agent_state }],
  rows, { testid: "my-results", empty: "暂无质检结果", onRow: (r) => guarded(() => open(r.id)) }));
}

const audio = $("#my-audio");
let audioFor = null; // the result whose recording is loaded
async function seek(ms) {
  if (audioFor !== current.id) {
    const res = await api(`/api/qa/results/${current.id}/audio`, { raw: true });
    audio.src = URL.createObjectURL(await res.blob());
    audioFor = current.id;
    await new Promise((ok) => audio.addEventListener("loadedmetadata", ok, { once: true }));
  }
  audio.currentTime = ms / 1000;
  audio.play().catch(() => {});
}

function itemView(item) {
  const overturned = item.verdict === "overturn";
  return h("div", { class: "qa-item card", "data-testid": "my-item", dataset: { code: item.code } },
    h("div", { class: "row" }, h("strong", { class: item.effective_passed ? "item-pass" : "item-fail" },
      `${item.effective_passed ? "✔" : "✘"} ${item.name}`),
    overturned ? h("span", { class: "badge ok", "data-testid": "overturned" }, item.passed ? "复核改判为未通过" : "复核已推翻，不扣分") : null,
    item.needs_review && !item.verdict ? h("span", { class: "badge warn" }, "需人工复核") : null),
    (item.evidence || []).filter((ev) => ev.text || ev.kb_entry_id !== undefined).map((ev) => h("div", { class: "evidence" },
      ev.start_ms !== undefined ? h("button", { type: "button", class: "link", "data-testid": "my-evidence",
        onclick: () => guarded(() => seek(ev.start_ms)) }, `▶ ${fmtMs(ev.start_ms)}`) : null,
      ev.text ? h("span", { class: "muted" }, ` “${ev.text}”`) : null, kbReference(ev, current.kb_entries || {}))));
}

async function open(id) {
  current = await api(`/api/qa/results/${id}`);
  $("#my-detail").hidden = false;
  audio.removeAttribute("src");
  audioFor = null;
  $("#md-h").textContent = `质检结果 · 得分 ${fmtNum(current.score, 1)} · ${STATE_ZH[current.agent_state] || current.agent_state}`;
  const failed = current.items.filter((i) => !i.effective_passed);
  // passed but sent to a person (the ASR may have misheard): not deducted, shown apart until reviewed
  const pending = current.items.filter((i) => !failed.includes(i) && i.needs_review && !i.verdict);
  const overturned = current.items.filter((i) => !failed.includes(i) && i.verdict === "overturn");
  const passed = current.items.filter((i) => !failed.includes(i) && !pending.includes(i) && !overturned.includes(i));
  clear($("#my-items"), ...(failed.length ? [h("h3", {}, "扣分项"), ...failed.map(itemView)] : [h("p", { class: "item-pass" }, "没有扣分项")]),
    ...(pending.length ? [h("h3", { "data-testid": "my-pending" }, "待人工复核（不扣分）"), ...pending.map(itemView)] : []),
    ...(overturned.length ? [h("h3", {}, "复核改判"), ...overturned.map(itemView)] : []),
    passed.length ? h("details", {}, h("summary", {}, `已通过 ${passed.length} 项`), passed.map(itemView)) : null);
  $("#my-ack").disabled = Boolean(current.agent_state);
  $("#my-appeal").disabled = ["appealed", "appeal_upheld", "appeal_rejected"].includes(current.agent_state);
}

async function respond(action) {
  const comment = $("#my-comment").value.trim();
  if (action === "appeal" && !comment) { toast("申诉请写明理由", "error"); $("#my-comment").focus(); return; }
  if (await guarded(() => api(`/api/qa/results/${current.id}/agent`, { method: "POST", body: { action, comment } })) === undefined) return;
  toast(action === "appeal" ? "申诉已提交，质检员会尽快处理" : "已确认", "ok");
  $("#my-comment").value = "";
  await open(current.id);
  await load();
}
$("#my-ack").addEventListener("click", () => respond("acknowledge"));
$("#my-appeal").addEventListener("click", () => respond("appeal"));
$("#my-respond").addEventListener("submit", (e) => e.preventDefault());
await guarded(load);
