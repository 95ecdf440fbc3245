// What the QA workspace and the agent's 我的质检 both show for a piece of evidence.
import { h } from "./app.js";

/** The knowledge entry an answer error contradicts: its title, the fact the agent got wrong and the entry's answer. */
export function kbReference(ev, entries) {
  if (ev.kb_entry_id === undefined || ev.kb_entry_id === null) return null;
  const entry = entries[String(ev.kb_entry_id)];
  return h("div", { class: "kb-ref", "data-testid": "kb-ref" },
    h("strong", {}, entry ? `知识库条目 #${entry.id} ${entry.title}` : `知识库条目 ${ev.kb_entry_id}（已不存在）`),
    ev.correct ? h("p", {}, "正确内容：", h("mark", {}, ev.correct)) : null,
    entry ? h("details", {}, h("summary", {}, "查看条目答复"), h("p", { style: { whiteSpace: "pre-wrap" } }, entry.body)) : null);
}
