import { $, api, boot, chart, clear, connectLive, fmtTime, guarded, h } from "./app.js";

const me = await boot("screen", ["supervisor", "admin"], { header: false });
$("#bs-title").textContent = `${me.tenant_name} · 运行态势`;

const px = (vw) => Math.max(10, Math.round((window.innerWidth * vw) / 100)); // chart font sizes follow the screen
const pct = (v) => (v === null || v === undefined ? "—" : `${v}%`);

function counters(d) {
  const busy = (d.live.agents.busy || 0) + (d.live.agents.acw || 0);
  const online = d.live.agents_total - (d.live.agents.signed_out || 0);
  const items = [["今日呼入", d.today.offered], ["今日接通", d.today.answered], ["接通率", pct(d.today.answer_rate)],
    ["排队中", d.live.queued], ["在线坐席", `${online}/${d.live.agents_total}`], ["通话中坐席", busy]];
  clear($("#bs-counters"), items.map(([k, v]) =>
    h("div", { class: "bs-counter", "data-testid": `counter-${k}` }, h("div", { class: "v" }, String(v)), h("div", { class: "k" }, k))));
}

function heat(d) {
  const max = Math.max(1, ...d.districts.map((x) => x.value));
  // the tenant's own districts (its settings), in a grid sized to how many there are
  const side = Math.max(1, Math.ceil(Math.sqrt(d.districts.length)));
  $("#bs-heat").style.gridTemplateColumns = `repeat(${side}, 1fr)`;
  $("#bs-heat").style.gridTemplateRows = `repeat(${Math.max(1, Math.ceil(d.districts.length / side))}, 1fr)`;
  clear($("#bs-heat"), d.districts.map((x) => {
    const t = x.value / max;
    const color = `rgb(${Math.round(30 + 200 * t)}, ${Math.round(90 + 40 * (1 - t))}, ${Math.round(180 * (1 - t) + 40)})`;
    return h("div", { class: "bs-district", style: { background: color }, title: `${x.name}：${x.value}` },
      h("span", {}, x.name), h("b", {}, String(x.value)));
  }));
}

function words(d) {
  const max = Math.max(1, ...d.hot_words.map((w) => w.value));
  const palette = ["#4fe3c1", "#7fd1ff", "#ffd166", "#ef8fff", "#9fb7d9"];
  clear($("#bs-words"), d.hot_words.length ? d.hot_words.map((w, i) => h("span", {
    style: { fontSize: `clamp(11px, ${0.8 + 1.6 * (w.value / max)}vw, 72px)`, color: palette[i % palette.length] },
  }, w.name)) : h("span", { class: "muted" }, "暂无数据"));
}

/** A gauge, or "暂无数据" where there is no value yet (no rated call today, no KPI computed): never a false 0. */
function gauge(el, name, value, max, suffix) {
  if (value === null || value === undefined) {
    const inst = window.echarts && window.echarts.getInstanceByDom(el);
    if (inst) inst.dispose();
    clear(el, h("div", { class: "bs-empty", "data-testid": "gauge-empty" }, h("b", {}, "暂无数据"), h("span", {}, name)));
    return;
  }
  chart(el, {
    series: [{ type: "gauge", min: 0, max, radius: "92%", progress: { show: true, width: px(0.6) },
      axisLine: { lineStyle: { width: px(0.6) } }, axisLabel: { color: "#9fb7d9", fontSize: px(0.55), distance: px(0.9) },
      splitLine: { length: px(0.4) }, axisTick: { show: false }, pointer: { width: px(0.3) },
      title: { color: "#9fb7d9", fontSize: px(0.75), offsetCenter: [0, "75%"] },
      detail: { color: "#4fe3c1", fontSize: px(1.3), offsetCenter: [0, "40%"], formatter: (v) => `${v}${suffix}` },
      data: [{ value, name }] }],
  });
}

function draw(d) {
  counters(d);
  heat(d);
  words(d);
  const axis = { axisLabel: { color: "#9fb7d9", fontSize: px(0.6) }, splitLine: { lineStyle: { color: "#16345f" } } };
  chart($("#bs-hourly"), {
    grid: { left: "8%", right: "3%", top: "10%", bottom: "14%" }, tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: d.hourly.x, ...axis }, yAxis: { type: "value", ...axis },
    series: [{ type: "line", smooth: true, areaStyle: { opacity: 0.25 }, data: d.hourly.offered, name: "呼入量", color: "#4fe3c1" }],
  });
  chart($("#bs-trend"), {
    grid: { left: "8%", right: "3%", top: "18%", bottom: "14%" }, tooltip: { trigger: "axis" },
    legend: { textStyle: { color: "#9fb7d9", fontSize: px(0.6) }, top: 0 },
    xAxis: { type: "category", data: d.category_trend.x, ...axis }, yAxis: { type: "value", ...axis },
    series: d.category_trend.series.map((s) => ({ ...s, type: "line", smooth: true })),
  });
  gauge($("#bs-sat"), "今日满意率", d.today.satisfaction_rate, 100, "%");
  gauge($("#bs-kpi"), d.kpi ? `${d.kpi.month} 考核得分` : "考核得分（本月未核算）", d.kpi ? d.kpi.total_score : null, 100, "");
}

const refresh = () => guarded(async () => draw(await api("/api/reports/dashboard")));
await refresh();
setInterval(refresh, 15000);
setInterval(() => { $("#bs-clock").textContent = fmtTime(new Date(), { seconds: true }); }, 1000);
let pending = null;
connectLive("/ws/supervisor", (event) => {
  if (event.kind === "call.state" && !pending) pending = setTimeout(() => { pending = null; refresh(); }, 2000);
});
