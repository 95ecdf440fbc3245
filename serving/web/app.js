// Shared shell of every page: session, role-based navigation, fetch with CSRF, live WebSocket, small DOM helpers.

export const ROLE_LABELS = {
  agent: "话务员", qa_reviewer: "质检员", knowledge_manager: "知识库管理员",
  supervisor: "班长/主管", evaluator: "评测员", admin: "系统管理员",
};

// Each role sees only its own pages.
export const NAV = [
  { id: "agent", href: "/ui/agent.html", label: "座席工作台", roles: ["agent"] },
  { id: "myqa", href: "/ui/myqa.html", label: "我的质检", roles: ["agent"] },
  { id: "qa", href: "/ui/qa.html", label: "质检工作台", roles: ["qa_reviewer"] },
  { id: "knowledge", href: "/ui/knowledge.html", label: "知识库", roles: ["knowledge_manager"] },
  { id: "wall", href: "/ui/wall.html", label: "实时监控", roles: ["supervisor"] },
  { id: "tickets", href: "/ui/tickets.html", label: "工单看板", roles: ["supervisor"] },
  { id: "reports", href: "/ui/reports.html", label: "话务报表", roles: ["supervisor", "admin"] },
  { id: "kpi", href: "/ui/kpi.html", label: "月度考核", roles: ["supervisor", "admin"] },
  { id: "screen", href: "/ui/screen.html", label: "数据大屏", roles: ["supervisor", "admin"] },
  { id: "eval", href: "/ui/eval.html", label: "模型评测", roles: ["evaluator"] },
  { id: "admin", href: "/ui/admin.html", label: "用户与审计", roles: ["admin"] },
];

export function homeFor(role) {
  const first = NAV.find((n) => n.roles.includes(role));
  return first ? first.href : "/ui/account.html";
}

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail || {};
  }
}

function cookie(name) {
  const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return hit ? decodeURIComponent(hit.slice(name.length + 1)) : "";
}

export function toLogin(reason) {
  const next = encodeURIComponent(location.pathname + location.search);
  location.replace(`/ui/index.html?next=${next}${reason ? "&reason=" + reason : ""}`);
}

/** fetch JSON (or a FormData upload); 401 sends the user back to the login page. */
export async function api(path, { method = "GET", body, form, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = cookie("hotline_csrf");
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (res.status === 401 && !path.startsWith("/api/auth/login")) {
    toLogin("expired");
    throw new ApiError(401, "unauthenticated", "登录已过期，请重新登录");
  }
  if (raw && res.ok) return res;
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || "http_error", err.message || `请求失败（${res.status}）`, err.detail);
  }
  return data;
}

/** DOM builder: h("div", {class: "x", onclick: fn}, "text", child). Text is always set as text (no HTML). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function clear(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function toast(message, kind = "info") {
  let box = $("#toasts");
  if (!box) {
    box = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const item = h("div", { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

/** Run an async UI action, showing its error as a toast; returns its result or undefined. */
export async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e.status !== 401) toast(e.message || String(e), "error");
    return undefined;
  }
}

// Every time the API sends carries its offset (stored UTC); pages show it in the tenant's zone (/api/auth/me).
let timeZone = "Asia/Shanghai";
const parts = (d, withSeconds) => Object.fromEntries(new Intl.DateTimeFormat("en-CA", {
  timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  ...(withSeconds ? { second: "2-digit" } : {}),
}).formatToParts(d).map((p) => [p.type, p.value]));

const toDate = (value) => (value instanceof Date ? value : typeof value === "number" ? new Date(value * 1000) : new Date(value));

/** "YYYY-MM-DD HH:MM" (or with seconds) in the tenant's zone. */
export function fmtTime(value, { seconds = false } = {}) {
  if (value === null || value === undefined || value === "") return "";
  const d = toDate(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const p = parts(d, seconds);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}${seconds ? ":" + p.second : ""}`;
}

/** "HH:MM:SS" in the tenant's zone. */
export function fmtClock(value = new Date()) {
  return fmtTime(value, { seconds: true }).slice(11);
}

/** The tenant's calendar day "YYYY-MM-DD" of a moment (default now), e.g. for date inputs. */
export function localDay(value = new Date()) {
  const p = parts(toDate(value), false);
  return `${p.year}-${p.month}-${p.day}`;
}

export function fmtMs(ms) {
  const s = Math.max(0, Math.floor((ms || 0) / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

export function fmtNum(v, digits = 1) {
  if (v === null || v === undefined || v === "") return "—";
  return typeof v === "number" && !Number.isInteger(v) ? v.toFixed(digits) : String(v);
}

/** A table from rows and [{key,label,render?}] columns. */
export function table(columns, rows, { empty = "暂无数据", onRow, testid } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)));
  const body = rows.length
    ? rows.map((r) => {
        const tr = h("tr", onRow ? { tabindex: "0", class: "clickable" } : {},
          columns.map((c) => h("td", {}, c.render ? c.render(r) : fmtNum(r[c.key]))));
        if (onRow) {
          tr.addEventListener("click", () => onRow(r, tr));
          tr.addEventListener("keydown", (e) => { if (e.key === "Enter") onRow(r, tr); });
        }
        return tr;
      })
    : [h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty))];
  return h("table", { class: "grid", "data-testid": testid }, h("thead", {}, head), h("tbody", {}, body));
}

/** Render an ECharts option into el (vendored library); re-sizes with its box. */
export function chart(el, option) {
  if (!window.echarts) {
    clear(el, h("p", { class: "muted" }, "图表库未安装（请运行 scripts/vendor_assets.sh）"));
    return null;
  }
  let inst = window.echarts.getInstanceByDom(el);
  if (!inst) {
    inst = window.echarts.init(el, null, { renderer: "canvas" });
    new ResizeObserver(() => inst.resize()).observe(el);
  }
  inst.setOption({ textStyle: { fontFamily: "inherit" }, ...option }, true);
  return inst;
}

/** Live events (transcripts, suggestions, alerts) over a WebSocket that reconnects with back-off. */
export function connectLive(path, onEvent, onStatus = () => {}) {
  let ws;
  let closed = false;
  let delay = 1000;
  const open = () => {
    ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`);
    ws.onopen = () => { delay = 1000; onStatus("open"); };
    ws.onmessage = (m) => {
      let event;
      try { event = JSON.parse(m.data); } catch { return; }
      onEvent(event);
    };
    ws.onclose = async () => {
      onStatus("closed");
      if (closed) return;
      try { await api("/api/auth/me"); } catch { return; } // 401 → login page
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 15000);
    };
  };
  open();
  return { close() { closed = true; ws.close(); }, get socket() { return ws; } };
}

function renderHeader(me, activeId) {
  const links = NAV.filter((n) => n.roles.includes(me.role)).map((n) =>
    h("a", { href: n.href, class: n.id === activeId ? "active" : "", "aria-current": n.id === activeId ? "page" : null,
      "data-nav": n.id }, n.label));
  const logout = h("button", { type: "button", class: "link", id: "logout" }, "退出");
  logout.addEventListener("click", async () => {
    await guarded(() => api("/api/auth/logout", { method: "POST" }));
    location.replace("/ui/index.html");
  });
  return h("header", { class: "topbar" },
    h("a", { class: "brand", href: homeFor(me.role) }, `${me.tenant_name} · 智能平台`),
    h("nav", { id: "nav", "aria-label": "主导航" }, links),
    h("div", { class: "who" },
      h("span", { id: "whoami", "data-role": me.role }, `${me.display_name || me.username}（${me.role_label || ROLE_LABELS[me.role]}）`),
      h("a", { href: "/ui/account.html", "data-nav": "account",
        class: me.password_change_required ? "badge warn" : "",
        title: me.password_change_required ? "当前使用的是初始密码，请尽快修改" : null },
        me.password_change_required ? "请修改初始密码" : "修改密码"), logout));
}

export let me = null;

/**
 * Start a page: load the current user (401 → login), draw the header and check the page's roles.
 * Resolves to the user, or never resolves when the page is not for this role.
 */
export async function boot(pageId, roles, { header = true } = {}) {
  me = await api("/api/auth/me");
  if (me.time_zone) timeZone = me.time_zone;
  if (header) document.body.prepend(renderHeader(me, pageId));
  document.title = `${document.title.split(" · ")[0]} · ${me.tenant_name} · 智能平台`; // as the header's brand says
  if (roles && !roles.includes(me.role)) {
    clear($("main"), h("section", { class: "card" }, h("h1", {}, "无权访问"),
      h("p", {}, "当前账号无权使用此页面。"), h("a", { href: homeFor(me.role) }, "返回我的工作台")));
    return new Promise(() => {});
  }
  // idle sessions expire on the server; check now and then so a forgotten tab returns to the login page
  setInterval(() => api("/api/auth/me").catch(() => {}), 5 * 60 * 1000);
  return me;
}

/** Tabs: buttons[data-tab] switch sections[data-panel]; remembers the tab in the URL hash. */
export function tabs(root, onShow = () => {}) {
  const buttons = [...root.querySelectorAll("[data-tab]")];
  const show = (name) => {
    for (const b of buttons) b.setAttribute("aria-selected", String(b.dataset.tab === name));
    for (const p of document.querySelectorAll("[data-panel]")) p.hidden = !p.dataset.panel.split(" ").includes(name);
    history.replaceState(null, "", "#" + name);
    onShow(name);
  };
  for (const b of buttons) b.addEventListener("click", () => show(b.dataset.tab));
  window.addEventListener("hashchange", () => {
    const name = location.hash.slice(1);
    if (buttons.some((b) => b.dataset.tab === name && b.getAttribute("aria-selected") !== "true")) show(name);
  });
  const initial = location.hash.slice(1);
  show(buttons.some((b) => b.dataset.tab === initial) ? initial : buttons[0].dataset.tab);
  return show;
}
