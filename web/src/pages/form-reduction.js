// 减量地块填报: upload → QC result (nothing written) → confirm → see the plots on the map.
import { api, errorText } from "../api.js";
import { areaText, badge, fmt, h, section, table, toast } from "../ui.js";

export async function render(root) {
  const { units, layer: unitsLayer, plots_layer: plotsLayer } = await api("/api/ui/reduction/units");
  root.append(h("h1", {}, "减量地块填报"));
  if (!units.length) {
    root.append(h("p", { class: "card muted" }, "本辖区没有可填报的乡镇 (或尚未设定减量核算单元图层)。"));
    return;
  }
  const town = h("select", { id: "plot-township", name: "township" }, units.map((u) => h("option", { value: u.code }, `${u.name} (${u.code})`)));
  const year = h("input", { id: "plot-year", name: "year", type: "number", min: 2000, max: 2100, value: new Date().getFullYear() - 1, required: true });
  const file = h("input", { id: "plot-file", name: "file", type: "file", accept: ".geojson,.json,.gpkg,.zip,.xlsx,.xls,.csv,.kml", required: true });
  const result = h("div", { id: "plot-check" });
  const form = h(
    "form",
    { class: "card", id: "plot-form" },
    h("p", { class: "muted" }, "支持 GeoJSON、GeoPackage、Shapefile (zip)、含 WKT 列或“图层+要素编号”两列的 Excel/CSV。先检查, 确认无误后再提交; 检查不写入任何数据。"),
    h("label", { for: "plot-township" }, "乡镇"),
    town,
    h("label", { for: "plot-year" }, "年度"),
    year,
    h("label", { for: "plot-file" }, "地块文件"),
    file,
    h("button", { type: "submit", class: "primary", id: "plot-check-btn" }, "上传并检查"),
  );
  root.append(form, result);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!file.files.length) return;
    const fd = new FormData();
    fd.append("file", file.files[0]);
    fd.append("township", town.value);
    fd.append("year", year.value);
    result.replaceChildren(h("p", { class: "muted" }, "正在检查…"));
    try {
      showCheck(await api("/api/ui/reduction/check", { method: "POST", form: fd }));
    } catch (e) {
      result.replaceChildren(h("p", { class: "error-text", role: "alert" }, errorText(e)));
    }
  });

  function showCheck(r) {
    if (r.refused) {
      result.replaceChildren(
        section(
          "质检未通过, 未写入任何地块",
          h("p", { class: "error-text", role: "alert" }, r.message),
          r.hint ? h("p", { class: "muted" }, r.hint) : null,
          issuesTable(r.issues),
        ),
      );
      return;
    }
    const flag = h("input", { type: "checkbox", id: "plot-flag" });
    const confirm = h("button", { type: "button", class: "primary", id: "plot-confirm" }, "确认提交");
    const box = section(
      r.ok ? "质检通过" : `质检完成: ${r.flagged} 个地块未通过减量检查`,
      h("p", { id: "plot-summary" }, `${r.submitted} 个地块, 合计 ${areaText(r.area_m2)} (椭球面积)`),
      table(r.plots, [
        { key: "plot_id", label: "地块编号" },
        { key: "plot_type", label: "类型" },
        { key: "planned_use", label: "减量后用途" },
        { key: "area_m2", label: "面积 (㎡)", fmt: (v) => fmt(v, 1) },
        { key: "qc_status", label: "结果", fmt: (v) => badge(v === "ok" ? "通过" : "未通过", v === "ok" ? "ok" : "bad") },
        { key: "qc_reasons", label: "原因" },
      ]),
      r.ok ? null : h("p", {}, flag, h("label", { for: "plot-flag" }, " 带标记入库 (未通过的地块不计入验收)")),
      h("div", { class: "row" }, confirm, h("button", { type: "button", class: "link", onclick: () => result.replaceChildren() }, "放弃")),
    );
    confirm.disabled = !r.ok;
    flag.addEventListener("change", () => (confirm.disabled = !r.ok && !flag.checked));
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      try {
        const s = await api("/api/ui/reduction/submit", { method: "POST", json: { token: r.token, flag: flag.checked } });
        toast(`已提交 ${s.submitted} 个地块 (快照 ${s.snapshot.label})`, "ok");
        result.replaceChildren(
          section(
            "已提交",
            h("p", { id: "plot-done" }, `已写入 ${s.submitted} 个地块, 快照 ${s.snapshot.label}; 带标记 ${s.flagged} 个。`),
            h("a", { class: "button primary", id: "plot-view-map", href: "#/map?layers=" + [plotsLayer || "reduction_plots", unitsLayer].filter(Boolean).map(encodeURIComponent).join(",") }, "在地图上查看"),
          ),
        );
      } catch (e) {
        confirm.disabled = false;
        result.append(h("p", { class: "error-text", role: "alert" }, errorText(e)));
        if (e.data && e.data.issues) result.append(issuesTable(e.data.issues));
      }
    });
    result.replaceChildren(box);
  }
}

function issuesTable(issues) {
  return table(issues || [], [
    { key: "plot_id", label: "地块" },
    { key: "check", label: "检查项" },
    { key: "severity", label: "级别", fmt: (v) => badge(v === "error" ? "错误" : v === "warning" ? "警告" : v, v === "error" ? "bad" : "warn") },
    { key: "message", label: "说明" },
  ]);
}
