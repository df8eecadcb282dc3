// 减量进度 dashboard: progress by district and township (computed from the ledger; reported figures apart).
import { api } from "../api.js";
import { STATUS_COLOUR, chart, disposeAll } from "../lib/charts.js";
import { badge, fmt, h, section, syntheticBadge, table } from "../ui.js";

export const destroy = disposeAll;

const km2 = (v) => fmt(v, 3);

export async function render(root) {
  const d = await api("/api/ui/reduction/progress");
  const dist = d.district;
  const town = d.township;
  root.append(h("h1", {}, "减量进度", dist.year ? ` · 截至 ${dist.year} 年` : "", " ", syntheticBadge(dist.synthetic_survey)));
  if (dist.message) root.append(h("p", { class: "card muted", id: "reduction-message" }, dist.message));
  if (dist.synthetic_survey) root.append(h("p", { class: "muted" }, "调查图层为合成数据; 乡镇目标分解为演示用合成数据。"));

  const cols = [
    { key: "unit_name", label: "单元" },
    { key: "target_km2", label: "目标 (km²)", fmt: km2 },
    { key: "horizon_year", label: "期限", fmt: (v) => (v ? String(v) : "—") },
    { key: "accepted_km2", label: "已验收 (km²)", fmt: km2 },
    { key: "net_km2", label: "净减量 (km²)", fmt: km2 },
    { key: "percent_complete", label: "完成率", fmt: (v) => (v === null ? "—" : fmt(v, 1) + "%") },
    { key: "required_pace_km2", label: "所需年均 (km²)", fmt: km2 },
    { key: "status_label", label: "状态", fmt: (v) => badge(v, "st-" + v) },
  ];
  root.append(
    section(
      "区级",
      table([...dist.rows, ...dist.reported.map((r) => ({ ...r, unit_name: `${r.unit_name} (${r.label})` }))], cols, { empty: "本辖区没有区级目标" }),
      dist.reported.length ? h("p", { class: "muted small" }, dist.reported.map((r) => r.note).join("; ")) : null,
    ),
  );
  const rows = [...town.rows].sort((a, b) => (b.percent_complete ?? -1e9) - (a.percent_complete ?? -1e9));
  const el = h("div", { class: "chart", id: "chart-townships", style: `height:${Math.min(900, 90 + rows.length * 34)}px` });
  root.append(section(`乡镇 (${rows.length})`, el, table(rows, cols, { empty: "本辖区没有乡镇目标" })));
  if (rows.length)
    chart(el, {
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 90, right: 30, top: 30, bottom: 30 },
      yAxis: { type: "category", data: rows.map((r) => r.unit_name), inverse: true },
      xAxis: { type: "value", name: "km²" },
      series: [
        { name: "目标", type: "bar", data: rows.map((r) => r.target_km2), itemStyle: { color: "#bdbdbd" } },
        { name: "净减量", type: "bar", data: rows.map((r) => r.net_km2), itemStyle: { color: "#2b8cbe" } },
        { name: "已验收", type: "bar", data: rows.map((r) => r.accepted_km2), itemStyle: { color: STATUS_COLOUR.达标 } },
      ],
    });
  if (town.warnings.length) root.append(section("预警", h("ul", { class: "warnings" }, town.warnings.slice(0, 50).map((w) => h("li", {}, w)))));
  const plots = await api("/api/ui/reduction/plots");
  root.append(
    section(
      `本辖区减量地块 (${plots.plots.length})`,
      table(plots.plots.slice(0, 500), [
        { key: "plot_id", label: "地块编号" },
        { key: "township", label: "乡镇代码" },
        { key: "year", label: "年度", fmt: (v) => String(v) },
        { key: "plot_type", label: "类型" },
        { key: "planned_use", label: "减量后用途" },
        { key: "area_m2", label: "面积 (㎡)", fmt: (v) => fmt(v, 1) },
        { key: "qc_status", label: "质检", fmt: (v) => badge(v === "ok" ? "通过" : "带标记", v === "ok" ? "ok" : "warn") },
      ]),
    ),
  );
}
