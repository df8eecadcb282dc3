// 城市体检 dashboard: status counts, per-dimension table, trends and a choropleth by street.
import { api } from "../api.js";
import { STATUS_COLOUR, chart, disposeAll, echarts } from "../lib/charts.js";
import { badge, fmt, h, section, syntheticBadge, table } from "../ui.js";

export const destroy = disposeAll;

export async function render(root, { params }) {
  const q = { year: params.get("year"), level: params.get("level"), indicator: params.get("indicator") };
  const d = await api("/api/ui/indicators/summary", { query: q });
  root.append(h("h1", {}, "城市体检", d.area ? ` · ${d.area.name}` : "", " ", syntheticBadge(d.synthetic)));
  if (!d.available) {
    root.append(h("p", { class: "card muted" }, d.message));
    return;
  }
  const pick = h("select", { id: "health-run" }, d.options.map((o) => h("option", { value: `${o.level}:${o.year}` }, `${o.year} 年 · ${o.level === "street" ? "分街乡" : "区级"}`)));
  pick.value = `${d.level}:${d.year}`;
  pick.addEventListener("change", () => {
    const [level, year] = pick.value.split(":");
    location.hash = `#/dash/health?level=${level}&year=${year}`;
  });
  root.append(h("div", { class: "toolbar" }, h("label", { for: "health-run" }, "评估: "), pick));

  const pieEl = h("div", { class: "chart", id: "chart-status" });
  const dimEl = h("div", { class: "chart", id: "chart-dims" });
  root.append(h("div", { class: "cols" }, section("指标状态", pieEl), section("分维度", dimEl)));
  chart(pieEl, {
    tooltip: { trigger: "item" },
    legend: { bottom: 0 },
    series: [{ type: "pie", radius: ["35%", "65%"], data: d.status_counts.map((s) => ({ name: s.status, value: s.count, itemStyle: { color: STATUS_COLOUR[s.status] } })), label: { formatter: "{b}\n{c}" } }],
  });
  const statuses = ["达标", "预警", "未达标", "无目标", "无法计算"];
  chart(dimEl, {
    tooltip: { trigger: "axis" },
    legend: { bottom: 0 },
    grid: { left: 60, right: 10, top: 10, bottom: 50 },
    xAxis: { type: "category", data: d.dimensions.map((r) => r.dimension) },
    yAxis: { type: "value", name: "指标×单元" },
    series: statuses.map((s) => ({ name: s, type: "bar", stack: "s", itemStyle: { color: STATUS_COLOUR[s] }, data: d.dimensions.map((r) => r[s] || 0) })),
  });

  // indicator table of the aggregate unit: computed ones first, the rest folded
  const rows = d.indicators;
  const cols = [
    { key: "dimension", label: "维度" },
    { key: "name", label: "指标" },
    { key: "value", label: "数值", fmt: (v, r) => (v === null ? "—" : `${fmt(v)} ${r.value_unit || ""}`) },
    { key: "target", label: "目标", fmt: (v, r) => (v === null ? "—" : `${fmt(v)}${r.target_year ? ` (${r.target_year})` : ""}`) },
    { key: "status", label: "状态", fmt: (v) => badge(v, "st-" + v) },
    { key: "trend_direction", label: "趋势" },
    { key: "clause", label: "依据" },
  ];
  const computed = rows.filter((r) => r.value !== null);
  const missing = rows.filter((r) => r.value === null);
  root.append(
    section(
      `指标一览 (${rows.length} 项${rows[0] ? " · " + rows[0].unit_name : ""})`,
      table(computed, cols, { empty: "没有可计算的指标", rowClass: (r) => "st-row-" + r.status }),
      missing.length ? h("details", { id: "not-computable" }, h("summary", {}, `无法计算的指标 (${missing.length}): 缺少输入数据`), table(missing, cols)) : null,
    ),
  );

  // trends
  const trendIds = Object.keys(d.trend).filter((k) => d.trend[k].length);
  const trendEl = h("div", { class: "chart", id: "chart-trend" });
  const names = Object.fromEntries(rows.map((r) => [r.indicator, r.name]));
  const tpick = h("select", { id: "trend-indicator" }, trendIds.map((k) => h("option", { value: k }, names[k] || k)));
  const drawTrend = () => {
    const s = d.trend[tpick.value] || [];
    chart(trendEl, {
      tooltip: { trigger: "axis" },
      grid: { left: 60, right: 20, top: 20, bottom: 30 },
      xAxis: { type: "category", data: s.map((p) => String(p.year)) },
      yAxis: { type: "value", scale: true },
      series: [{ type: "line", data: s.map((p) => p.value), symbolSize: 8 }],
    });
  };
  root.append(section("趋势", trendIds.length ? h("div", {}, h("label", { for: "trend-indicator" }, "指标 "), tpick) : h("p", { class: "muted" }, "没有可比较的年份"), trendEl));
  tpick.addEventListener("change", () => {
    echarts.getInstanceByDom(trendEl)?.dispose();
    drawTrend();
  });
  if (trendIds.length) drawTrend();

  // choropleth by unit
  const mapEl = h("div", { class: "chart tall", id: "chart-choropleth" });
  const mpick = h("select", { id: "map-indicator" }, d.map.computable.map((c) => h("option", { value: c.indicator }, c.name)));
  if (d.map.indicator) mpick.value = d.map.indicator;
  mpick.addEventListener("change", () => {
    location.hash = `#/dash/health?level=${d.level}&year=${d.year}&indicator=${encodeURIComponent(mpick.value)}`;
  });
  root.append(section("分街乡分级设色", d.map.values.length ? h("div", {}, h("label", { for: "map-indicator" }, "指标 "), mpick) : h("p", { class: "muted" }, "本次评估没有可计算的分单元指标"), mapEl));
  if (d.map.values.length) {
    const shapes = await api("/api/ui/indicators/shapes", { query: { ids: d.map.values.map((v) => v.unit_id).join(",") } });
    if (shapes.geojson) {
      for (const f of shapes.geojson.features) f.properties.name = f.properties.unit_id;
      echarts.registerMap("health-units", shapes.geojson);
      const vals = d.map.values.filter((v) => v.value !== null).map((v) => v.value);
      const labelOf = Object.fromEntries(d.map.values.map((v) => [v.unit_id, v.unit_name]));
      chart(mapEl, {
        tooltip: { trigger: "item", formatter: (p) => `${labelOf[p.name] || p.name}<br>${fmt(p.value)}` },
        visualMap: { min: Math.min(...vals), max: Math.max(...vals), calculable: true, left: 10, bottom: 10, inRange: { color: ["#f7fbff", "#6baed6", "#08306b"] } },
        series: [{ type: "map", map: "health-units", roam: true, nameProperty: "name", data: d.map.values.map((v) => ({ name: v.unit_id, value: v.value })), emphasis: { label: { show: false } } }],
      });
    }
  }
}
