// 重点任务 dashboard: tasks overdue first, with progress against the linear pace.
import { api } from "../api.js";
import { chart, disposeAll } from "../lib/charts.js";
import { badge, fmt, h, section, table } from "../ui.js";

export const destroy = disposeAll;

const KIND = { overdue: "bad", behind: "warn", due_soon: "warn", stale: "warn", done_late: "warn" };

export async function render(root, { params }) {
  const d = await api("/api/ui/tasks/states", { query: { at: params.get("at") || "" } });
  root.append(h("h1", {}, "重点任务", ` · ${d.at}`));
  const day = h("input", { type: "date", id: "tasks-at", value: d.at });
  day.addEventListener("change", () => (location.hash = `#/dash/tasks?at=${day.value}`));
  root.append(h("div", { class: "toolbar" }, h("label", { for: "tasks-at" }, "统计日期 "), day, h("a", { href: "#/forms/tasks", class: "button" }, "填报进度")));
  if (!d.available) {
    root.append(h("p", { class: "card muted" }, "本辖区没有任务台账"));
    return;
  }
  const el = h("div", { class: "chart short", id: "chart-task-status" });
  root.append(section("状态", el));
  const entries = Object.entries(d.counts);
  chart(el, {
    tooltip: {},
    grid: { left: 80, right: 20, top: 10, bottom: 20 },
    yAxis: { type: "category", data: entries.map((e) => e[0]) },
    xAxis: { type: "value", minInterval: 1 },
    series: [{ type: "bar", data: entries.map((e) => e[1]), itemStyle: { color: "#6a51a3" }, label: { show: true, position: "right" } }],
  });
  root.append(
    section(
      `任务 (${d.tasks.length}, 逾期在前)`,
      table(
        d.tasks,
        [
          { key: "task_id", label: "编号" },
          { key: "title", label: "任务" },
          { key: "lead", label: "牵头部门" },
          { key: "deadline", label: "期限" },
          { key: "progress_pct", label: "进度", fmt: (v, r) => h("span", {}, h("progress", { max: 100, value: v }), ` ${fmt(v, 0)}% / 应 ${fmt(r.expected_pct, 0)}%`) },
          { key: "status_label", label: "状态", fmt: (v, r) => badge(v, KIND[r.status] || "") },
          { key: "days_overdue", label: "逾期天数", fmt: (v) => (v ? String(v) : "") },
          { key: "last_report_on", label: "最近报送" },
        ],
        { rowClass: (r) => (r.status === "overdue" ? "bad-row" : "") },
      ),
    ),
  );
}
