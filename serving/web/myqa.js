import { $, api, boot, clear, fmtNum, fmtTime, guarded, h, table, toast } from "./app.js";

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

async function open(id) {
  current = await api(`/api/qa/results/${id}`);
  $("#my-detail").hidden = false;
  $("#md-h").textContent = `质检结果 · 得分 ${fmtNum(current.score, 1)} · ${STATE_ZH[current.agent_state] || current.agent_state}`;
  clear($("#my-items"), current.items.map((i) => h("div", { class: "qa-item card" },
    h("strong", { class: i.effective_passed ? "item-pass" : "item-fail" }, `${i.effective_passed ? "✔" : "✘"} ${i.name}`),
    (i.evidence || []).filter((e) => e.text).slice(0, 3).map((e) => h("p", { class: "muted" }, `“${e.text}”`)))));
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
