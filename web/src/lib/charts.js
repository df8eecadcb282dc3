// ECharts, tree-shaken to the charts the dashboards use; canvas renderer; CJK from the browser's fonts.
import { BarChart, LineChart, MapChart, PieChart } from "echarts/charts";
import { GeoComponent, GridComponent, LegendComponent, TitleComponent, TooltipComponent, VisualMapComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([BarChart, LineChart, PieChart, MapChart, GridComponent, TooltipComponent, LegendComponent, TitleComponent, VisualMapComponent, GeoComponent, CanvasRenderer]);

export { echarts };

export const FONT = "'Noto Sans CJK SC', 'Noto Sans SC', 'Microsoft YaHei', sans-serif";
export const STATUS_COLOUR = { 达标: "#1a9850", 预警: "#fdae61", 未达标: "#d73027", 无目标: "#9e9e9e", 无法计算: "#d9d9d9", 正常: "#1a9850", 滞后: "#d73027" };

const live = new Set();

/** A chart in ``el``; disposed by disposeAll() when the page changes. */
export function chart(el, option) {
  const c = echarts.init(el, null, { renderer: "canvas" });
  c.setOption({ textStyle: { fontFamily: FONT }, animation: false, ...option });
  live.add(c);
  const ro = new ResizeObserver(() => c.resize());
  ro.observe(el);
  c.__ro = ro;
  return c;
}

export function disposeAll() {
  for (const c of live) {
    c.__ro.disconnect();
    c.dispose();
  }
  live.clear();
}
