// 城市更新 dashboard: units by stage, deadlines due, rule findings.
import { api } from "../api.js";
import { chart, disposeAll } from "../lib/charts.js";
import { badge, fmt, h, section, syntheticBadge, table } from "../ui.js";

export const destroy = disposeAll;

const DL_STATUS = { overdue: "已逾期", due_today: "今日到期", due_soon: "即将到期", pending: "未到期", done: "已完成", exempt: "豁免" };

export async function render(root, { params }) {
  const at = params.get("at") || "";
  const d = await api("/api/ui/renewal/summary", { query: { at } });
  root.append(h("h1", {}, "城市更新", ` · ${d.at}`, " ", syntheticBadge(d.synthetic)));
  const day = h("input", { type: "date", id: "renewal-at", value: d.at });
  day.addEventListener("change", () => (location.hash = `#/dash/renewal?at=${day.value}`));
  root.append(h("div", { class: "toolbar" }, h("label", { for: "renewal-at" }, "评估日期 "), day));
  if (!d.available) {
    root.append(h("p", { class: "card muted" }, d.message));
    return;
  }
  const el = h("div", { class: "chart", id: "chart-stages" });
  root.append(
    h(
      "div",
      { class: "cols" },
      section("各阶段单元", el),
      section(
        "规则发现",
        h("p", {}, `错误 ${d.counts.error} · 警告 ${d.counts.warning} · 提示 ${d.counts.info}`),
        table(d.pipeline, [
          { key: "stage", label: "阶段" },
          { key: "units", label: "单元数" },
          { key: "land_mu", label: "用地 (亩)", fmt: (v) => fmt(v, 1) },
        ]),
      ),
    ),
  );
  chart(el, {
    tooltip: { trigger: "axis" },
    grid: { left: 50, right: 50, top: 30, bottom: 30 },
    legend: { top: 0 },
    xAxis: { type: "category", data: d.pipeline.map((r) => r.stage) },
    yAxis: [{ type: "value", name: "单元" }, { type: "value", name: "亩" }],
    series: [
      { name: "单元数", type: "bar", data: d.pipeline.map((r) => r.units), itemStyle: { color: "#2b8cbe" } },
      { name: "用地 (亩)", type: "line", yAxisIndex: 1, data: d.pipeline.map((r) => r.land_mu) },
    ],
  });
  root.append(
    section(
      `到期事项 (${d.deadlines.length})`,
      table(
        d.deadlines,
        [
          { key: "subject", label: "单元" },
          { key: "town", label: "镇街" },
          { key: "stage", label: "阶段" },
          { key: "label", label: "事项" },
          { key: "due", label: "期限" },
          { key: "days_left", label: "剩余天数" },
          { key: "status", label: "状态", fmt: (v) => badge(DL_STATUS[v] || v, v === "overdue" ? "bad" : v === "due_today" || v === "due_soon" ? "warn" : "") },
          { key: "clause", label: "依据" },
        ],
        { rowClass: (r) => (r.status === "overdue" ? "bad-row" : "") },
      ),
    ),
  );
  root.append(
    section(
      `问题 (错误与警告 ${d.findings_total})`,
      table(d.findings, [
        { key: "subject", label: "对象" },
        { key: "severity_label", label: "级别", fmt: (v, r) => badge(v, r.severity === "error" ? "bad" : "warn") },
        { key: "message", label: "说明" },
        { key: "clause", label: "依据" },
      ]),
    ),
  );
}
