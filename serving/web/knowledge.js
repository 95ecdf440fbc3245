import { $, api, boot, clear, fmtNum, fmtTime, guarded, h, table, tabs, toast } from "./app.js";

await boot("knowledge", ["knowledge_manager"]);

// Knowledge endpoints (serving/api/knowledge.py)
const query = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined));
const ops = {
  list: (params) => api(`/api/knowledge/entries?${query({ limit: 500, ...params })}`).then((r) => r.items),
  get: (id, version) => api(`/api/knowledge/entries/${id}${version ? `?version=${version}` : ""}`),
  versions: (id) => api(`/api/knowledge/entries/${id}/versions`),
  create: (body) => api("/api/knowledge/entries", { method: "POST", body }),
  update: (id, body) => api(`/api/knowledge/entries/${id}`, { method: "PUT", body }),
  act: (id, action) => api(`/api/knowledge/entries/${id}/action`, { method: "POST", body: { action } }),
  search: (q) => api("/api/knowledge/search", { method: "POST", body: { query: q, k: 5 } }),
  import: (form) => api("/api/knowledge/import", { method: "POST", form }),
  stats: () => api("/api/knowledge/stats"),
  taxonomy: () => api("/api/knowledge/taxonomy"),
};
const STATUS = { draft: ["草稿", ""], review: ["待审核", "warn"], published: ["已发布", "ok"], archived: ["已归档", "bad"] };
const FIELDS = ["title", "kind", "body", "category", "department", "keywords", "region", "effective_from", "effective_to", "source"];
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
  if (entry) Object.assign(v, { attachments: entry.attachments || [], external_id: entry.external_id || "" });
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
    const value = version ? version[f] : f === "kind" ? "faq" : "";
    $(`#ke-${f}`).value = Array.isArray(value) ? value.join("，") : value ?? "";
  }
  preview();
}

// the workflow: draft → (submit) review → (publish) published | (reject) draft; archive; restore
const ACTIONS = { submit: ["draft"], publish: ["review"], reject: ["review"], archive: ["draft", "published"], restore: ["archived"] };
function renderButtons() {
  for (const [action, from] of Object.entries(ACTIONS)) $(`#ke-${action}`).disabled = !entry || !from.includes(entry.status);
  const ownChange = entry && entry.status === "review" && entry.may_publish === false;
  if (ownChange) $("#ke-publish").disabled = true;
  $("#ke-four-eyes").hidden = !ownChange;
}

async function openEntry(id) {
  const [current, versions] = await Promise.all([ops.get(id), ops.versions(id)]);
  entry = current;
  $("#kb-editor-card").hidden = false;
  $("#ke-h").textContent = `编辑条目 #${entry.id}`;
  clear($("#kb-meta"), badge(entry.status), ` 当前版本 v${entry.current_version}`,
    entry.published_version ? `，已发布 v${entry.published_version}（座席助手使用已发布版本）` : "，未发布");
  fill(entry);
  renderButtons();
  $("#kb-diff").hidden = true;
  clear($("#kb-versions"), table([{ key: "version", label: "版本" }, { key: "title", label: "标题" },
    { key: "published", label: "", render: (v) => (v.published ? h("span", { class: "badge ok" }, "已发布") : "") },
    { key: "created_at", label: "时间", render: (v) => fmtTime(v.created_at) },
    { key: "diff", label: "对比", render: (v) => (v.version > 1 ? h("button", { type: "button", "data-testid": "diff-button",
      onclick: () => guarded(async () => showDiff(await ops.get(id, v.version - 1), await ops.get(id, v.version))) }, `与 v${v.version - 1} 对比`) : "") }],
  versions, { testid: "kb-versions" }));
}

$("#kb-filter").addEventListener("submit", (e) => { e.preventDefault(); guarded(loadList); });
$("#kb-status").addEventListener("change", () => guarded(loadList));

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
    $("#ke-error").textContent = err.message; // the server names each field in Chinese
  }
});

const DONE = { submit: "已提交审核", publish: "已发布，座席助手将使用新内容", reject: "已退回修改", archive: "已归档", restore: "已恢复为草稿" };
for (const [action, label] of Object.entries(DONE)) {
  $(`#ke-${action}`).addEventListener("click", () => guarded(async () => {
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
    const hits = res.hits;
    clear($("#ks-results"), res.no_good_match ? h("p", { class: "qa-warn" }, "没有足够匹配的条目（座席助手会提示“无匹配”）") : null,
      hits.length ? hits.map((hit) => h("article", { class: "suggestion", "data-testid": "kb-hit" },
        h("span", { class: "score" }, `分数 ${fmtNum(hit.score, 3)}`), h("h3", {}, `#${hit.entry_id} ${hit.title}`),
        hit.key_facts && hit.key_facts.length ? h("ul", { class: "facts" }, hit.key_facts.map((f) => h("li", {}, h("mark", {}, f)))) : null,
        h("p", {}, hit.answer))) : h("p", { class: "muted" }, "无结果"),
      h("p", { class: "muted" }, `检索耗时 ${res.latency_ms} 毫秒；规范化查询：${res.normalized_query}`));
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
  form.append("publish", $("#ki-publish").checked ? "true" : "false");
  const show = (report, ok) => {
    const errors = report.errors || [];
    clear($("#ki-report"), h("p", { class: ok ? "flash" : "qa-warn", "data-ok": String(ok) }, ok
      ? `导入成功：共 ${report.total} 条，新增 ${report.created}，更新 ${report.updated}，发布 ${report.published}`
      : `校验未通过：共 ${report.total ?? "—"} 条，${errors.length} 处错误，未导入任何条目。请修改后重新上传。`),
    errors.length ? table([{ key: "line", label: "行" }, { key: "field", label: "字段" }, { key: "message", label: "问题" }], errors) : null);
  };
  try {
    show(await ops.import(form), true);
    loadList();
  } catch (err) {
    if (err.detail && err.detail.errors) show(err.detail, false);
    else toast(err.message, "error");
  }
});

async function loadUsage() {
  const stats = await ops.stats();
  clear($("#kb-usage"), table([{ key: "title", label: "条目" }, { key: "status", label: "状态", render: (r) => badge(r.status) },
    { key: "suggested", label: "被推荐" }, { key: "used", label: "被采用" }, { key: "unhelpful", label: "不相关" },
    { key: "use_rate", label: "采用率", render: (r) => (r.use_rate === null ? "—" : `${(100 * r.use_rate).toFixed(1)}%`) }],
  stats.entries, { testid: "kb-usage", onRow: (r) => { document.querySelector("[data-tab=entries]").click(); guarded(() => openEntry(r.id)); } }));
  clear($("#kb-feedback"), h("p", { class: "muted" }, "坐席在通话中标记的“不相关”计入左表；以下为坐席对推荐分类的更正。"),
    table([{ key: "at", label: "时间", render: (r) => fmtTime(r.at) }, { key: "detail", label: "分类更正（推荐 → 更正）" },
      { key: "call_id", label: "通话" }], stats.category_corrections, { empty: "暂无分类更正" }));
}

ops.taxonomy().then((t) => {
  document.body.append(h("datalist", { id: "kb-categories" }, t.paths.map((p) => h("option", { value: p }))));
  $("#ke-category").setAttribute("list", "kb-categories");
}).catch(() => {});

const loaders = { entries: loadList, search: async () => $("#ks-q").focus(), review: loadReview, io: async () => {}, usage: loadUsage };
tabs(document, (name) => guarded(loaders[name]));
guarded(loadReview);
