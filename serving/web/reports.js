import { $, api, boot, chart, clear, guarded, h, localDay, table } from "./app.js";

await boot("reports", ["supervisor", "admin"]);

$("#report-date").value = localDay();
const list = await api("/api/reports/calls");
clear($("#report-name"), list.map((r) => h("option", { value: r.name }, r.title)));
const wanted = new URLSearchParams(location.search);
if (wanted.get("name")) $("#report-name").value = wanted.get("name");
if (wanted.get("period")) $("#report-period").value = wanted.get("period");

function chartOption(spec) {
  if (spec.pie) {
    return { tooltip: { trigger: "item" }, legend: { bottom: 0 },
      series: [{ type: "pie", radius: ["35%", "65%"], data: spec.pie, label: { formatter: "{b}: {c} ({d}%)" } }] };
  }
  const yAxis = [{ type: "value", name: "数量" }];
  if (spec.percent_axis) yAxis.push({ type: "value", name: "%", min: 0, max: 100 });
  return { tooltip: { trigger: "axis" }, legend: { top: 0 }, grid: { left: 50, right: 50, top: 40, bottom: 60 },
    xAxis: { type: "category", data: spec.x, axisLabel: { rotate: spec.x.length > 12 ? 40 : 0 } }, yAxis,
    series: spec.series };
}

async function load() {
  const q = new URLSearchParams({ period: $("#report-period").value, date: $("#report-date").value });
  const name = $("#report-name").value;
  $("#report-xlsx").href = `/api/reports/calls/${name}/xlsx?${q}`; // at once: an export right after a change is of it
  const report = await api(`/api/reports/calls/${name}?${q}`);
  $("#report-title").textContent = `${report.title}（${report.period_label}）${report.start} 至 ${report.end}`;
  if (report.chart) chart($("#report-chart"), chartOption(report.chart));
  clear($("#report-table"), table(report.columns, report.rows, { testid: "report-table" }));
  history.replaceState(null, "", `?name=${name}&period=${$("#report-period").value}`);
}

$("#report-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(load); });
for (const id of ["#report-name", "#report-period", "#report-date"]) $(id).addEventListener("change", () => guarded(load));
await guarded(load);
