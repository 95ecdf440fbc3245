import { $, api, boot, clear, fmtNum, fmtTime, guarded, h, table, tabs, toast } from "./app.js";

await boot("knowledge", ["knowledge_manager"]);

// Knowledge endpoints (serving/api/knowledge.py)
const ops = {
  list: (params) => api(`/api/knowledge/entries?${new URLSearchParams(params)}`),
  get: (id) => api(`/api/knowledge/entries/${id}`),
  create: (body) => api("/api/knowledge/entries", { method: "POST", body }),
  update: (id, body) => api(`/api/knowledge/entries/${id}`, { method: "PUT", body }),
  act: (id, action) => api(`/api/knowledge/entries/${id}/${action}`, { method: "POST" }),
  search: (q) => api(`/api/knowledge/search?${new URLSearchParams({ q })}`),
  import: (form, dry) => api(`/api/knowledge/import?dry_run=${dry}`, { method: "POST", form }),
  stats: () => api("/api/knowledge/stats"),
  feedback: () => api("/api/knowledge/feedback"),
};
const STATUS = { draft: ["草稿", ""], review: ["待审核", "warn"], published: ["已发布", "ok"], archived: ["已归档", "bad"] };
const FIELDS = ["title", "body", "category", "department", "keywords", "region", "effective_from", "effective_to", "source"];
let entry = null; // the entry in the editor

const badge = (s) => h("span", { class: `badge ${(STATUS[s] || [])[1] || ""}` }, (STATUS[s] || [s])[0]);

// ---------------------------------------------------------------- list and editor
async function loadList() {
  const rows = await ops.list({ q: $("#kb-q").value.trim(), status: $("#kb-status").value });
  clear($("#kb-list"), table([{ key: "id", label: "编号" }, { key: "title", label: "标题" }, { key: "category", label: "分类" },
    { key: "status", label: "状态", render: (r) => badge(r.status) }, { key: "current_version", label: "版本" },
    { key: "updated_at", label: "更新时间", render: (r) => fmtTime(r.updated_at) }],
  rows, { testid: "kb-list", onRow: (r) => guarded(() => openEntry(r.id)) }));
}

function formValues() {
  const v = Object.fromEntries(FIELDS.map((f) => [f, $(`#ke-${f}`).value.trim()]));
  v.keywords = v.keywords ? v.keywords.split(/[,，、\s]+/).filter(Boolean) : [];
  for (const d of ["effective_from", "effective_to"]) if (!v[d]) v[d] = null;
  return v;
}

function preview() {
  const v = formValues();
  clear($("#kb-preview"), h("span", { class: "score" }, v.category), h("h3", {}, v.title || "（无标题）"),
    v.body.split(/\n+/).map((p) => h("p", {}, p)),
    v.keywords.length ? h("p", { class: "muted" }, `关键词：${v.keywords.join("、")}`) : null,
    v.department ? h("p", { class: "muted" }, `责任部门：${v.department}`) : null);
}
$("#kb-editor").addEventListener("input", preview);

function fill(version) {
  for (const f of FIELDS) {
    const value = version ? version[f] : "";
    $(`#ke-${f}`).value = Array.isArray(value) ? value.join("，") : value ?? "";
  }
  preview();
}

function renderButtons() {
  const s = entry ? entry.status : "draft";
  $("#ke-submit").disabled = !entry || s !== "draft";
  $("#ke-publish").disabled = !entry || !["draft", "review"].includes(s);
  $("#ke-archive").disabled = !entry || s === "archived";
}

async function openEntry(id) {
  entry = await ops.get(id);
  $("#kb-editor-card").hidden = false;
  $("#ke-h").textContent = `编辑条目 #${entry.id}`;
  clear($("#kb-meta"), badge(entry.status), ` 当前版本 v${entry.current_version}`,
    entry.published_version ? `，已发布 v${entry.published_version}` : "，未发布");
  const versions = entry.versions || [];
  fill(versions[versions.length - 1] || entry);
  renderButtons();
  $("#kb-diff").hidden = true;
  clear($("#kb-versions"), table([{ key: "version", label: "版本" }, { key: "title", label: "标题" },
    { key: "author", label: "作者" }, { key: "created_at", label: "时间", render: (v) => fmtTime(v.created_at) },
    { key: "diff", label: "对比", render: (v) => (v.version > 1 ? h("button", { type: "button", "data-testid": "diff-button",
      onclick: () => showDiff(versions.find((x) => x.version === v.version - 1), v) }, `与 v${v.version - 1} 对比`) : "") }],
  versions));
}

$("#kb-new").addEventListener("click", () => {
  entry = null;
  $("#kb-editor-card").hidden = false;
  $("#ke-h").textContent = "新建条目";
  clear($("#kb-meta"));
  clear($("#kb-versions"));
  fill(null);
  renderButtons();
  $("#ke-title").focus();
});

$("#kb-editor").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#ke-error").textContent = "";
  const body = formValues();
  if (!body.title || !body.body) { $("#ke-error").textContent = "标题和答复内容不能为空"; return; }
  try {
    const saved = entry ? await ops.update(entry.id, body) : await ops.create(body);
    toast("已保存", "ok");
    await openEntry(saved.id);
    await loadList();
  } catch (err) {
    $("#ke-error").textContent = err.detail && err.detail.fields ? err.detail.fields.map((f) => `${f.field.split(".").pop()}：${f.message}`).join("；") : err.message;
  }
});

for (const [id, action, label] of [["#ke-submit", "submit", "已提交审核"], ["#ke-publish", "publish", "已发布，座席助手将使用新内容"], ["#ke-archive", "archive", "已归档"]]) {
  $(id).addEventListener("click", () => guarded(async () => {
    await ops.act(entry.id, action);
    toast(label, "ok");
    await openEntry(entry.id);
    await loadList();
  }));
}

// ---------------------------------------------------------------- version diff (character LCS; lines when long)
function diffTokens(a, b) {
  const split = (s) => (a.length + b.length > 4000 ? s.split(/(?<=\n)/) : [...s]);
  const x = split(a);
  const y = split(b);
  const dp = Array.from({ length: x.length + 1 }, () => new Uint16Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i--) for (let j = y.length - 1; j >= 0; j--)
    dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  const push = (tag, t) => { const last = out[out.length - 1]; if (last && last[0] === tag) last[1] += t; else out.push([tag, t]); };
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) { push("=", x[i]); i++; j++; } else if (dp[i + 1][j] >= dp[i][j + 1]) push("-", x[i++]); else push("+", y[j++]);
  }
  while (i < x.length) push("-", x[i++]);
  while (j < y.length) push("+", y[j++]);
  return out;
}

function showDiff(older, newer) {
  const box = $("#kb-diff");
  box.hidden = false;
  const part = (label, a, b) => h("div", {}, h("h3", {}, label), h("p", { style: { whiteSpace: "pre-wrap" } },
    diffTokens(String(a ?? ""), String(b ?? "")).map(([tag, t]) => (tag === "=" ? t : h(tag === "+" ? "ins" : "del", {}, t)))));
  clear(box, h("h3", {}, `v${older.version} → v${newer.version}`),
    FIELDS.filter((f) => JSON.stringify(older[f] ?? "") !== JSON.stringify(newer[f] ?? ""))
      .map((f) => part($(`label[for=ke-${f}]`).textContent, Array.isArray(older[f]) ? older[f].join("，") : older[f],
        Array.isArray(newer[f]) ? newer[f].join("，") : newer[f])));
  box.scrollIntoView({ block: "nearest" });
}

// ---------------------------------------------------------------- search as the copilot does it
$("#kb-search").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const res = await ops.search($("#ks-q").value.trim());
    const hits = res.hits || res;
    clear($("#ks-results"), res.no_good_match ? h("p", { class: "qa-warn" }, "没有足够匹配的条目（座席助手会提示“无匹配”）") : null,
      hits.length ? hits.map((hit) => h("article", { class: "suggestion", "data-testid": "kb-hit" },
        h("span", { class: "score" }, `分数 ${fmtNum(hit.score, 3)}`), h("h3", {}, hit.title),
        hit.key_facts && hit.key_facts.length ? h("ul", { class: "facts" }, hit.key_facts.map((f) => h("li", {}, h("mark", {}, f)))) : null,
        h("p", {}, hit.answer || hit.body || ""))) : h("p", { class: "muted" }, "无结果"));
  });
});

// ---------------------------------------------------------------- review queue, import/export, usage
async function loadReview() {
  const rows = await ops.list({ status: "review" });
  $("#count-review").textContent = String(rows.length);
  clear($("#kb-review"), table([{ key: "id", label: "编号" }, { key: "title", label: "标题" }, { key: "category", label: "分类" },
    { key: "updated_at", label: "提交时间", render: (r) => fmtTime(r.updated_at) }],
  rows, { empty: "没有待审核的条目", onRow: (r) => { document.querySelector("[data-tab=entries]").click(); guarded(() => openEntry(r.id)); } }));
}

$("#kb-import").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("#ki-file").files[0];
  if (!file) { toast("请选择文件", "error"); return; }
  const form = new FormData();
  form.append("file", file);
  try {
    const report = await ops.import(form, $("#ki-dry").checked);
    const errors = report.errors || [];
    clear($("#ki-report"), h("p", {}, `共 ${report.total ?? "—"} 条：新增 ${report.created ?? 0}，更新 ${report.updated ?? 0}，错误 ${errors.length}${report.dry_run ? "（仅校验，未写入）" : ""}`),
      errors.length ? table([{ key: "line", label: "行" }, { key: "field", label: "字段" }, { key: "message", label: "问题" }], errors) : null);
  } catch (err) { toast(err.message, "error"); }
});

async function loadUsage() {
  const [stats, feedback] = await Promise.all([ops.stats(), ops.feedback()]);
  clear($("#kb-usage"), table([{ key: "title", label: "条目" }, { key: "suggested_count", label: "被推荐" },
    { key: "used_count", label: "被采用" }, { key: "unhelpful_count", label: "不相关" },
    { key: "use_rate", label: "采用率", render: (r) => (r.suggested_count ? `${((100 * r.used_count) / r.suggested_count).toFixed(1)}%` : "—") }],
  stats.entries || stats, { testid: "kb-usage" }));
  const KIND = { used: "采用", unhelpful: "不相关", category_corrected: "纠正分类" };
  clear($("#kb-feedback"), table([{ key: "at", label: "时间", render: (r) => fmtTime(r.at) }, { key: "title", label: "条目" },
    { key: "kind", label: "反馈", render: (r) => KIND[r.kind] || r.kind }, { key: "detail", label: "说明" }, { key: "user", label: "坐席" }],
  feedback, { empty: "暂无反馈" }));
}

const loaders = { entries: loadList, search: async () => $("#ks-q").focus(), review: loadReview, io: async () => {}, usage: loadUsage };
tabs(document, (name) => guarded(loaders[name]));
guarded(loadReview);
