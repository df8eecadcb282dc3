// 公众门户 (no login): published layers and tables only — 区片地价一张表, 区片容积率一张图 (004 (九)).
import { api, errorText } from "../api.js";
import { KIND_ZH, createMap, tileUrl } from "../lib/mapbase.js";
import { badge, fmt, h, section, syntheticBadge, table } from "../ui.js";

let map = null;
export function destroy() {
  if (map) map.remove();
  map = null;
}

const FAR_STEPS = [
  [2.0, "#fee5d9"],
  [2.5, "#fcae91"],
  [3.0, "#fb6a4a"],
  [3.5, "#de2d26"],
  [4.0, "#a50f15"],
];

export async function render(root) {
  const pub = await api("/api/public/layers");
  let ov;
  try {
    ov = await api("/api/ui/portal");
  } catch {
    // without the portal router: show the published tables and the zone layer if present
    const tables = (await api("/api/public/tables")).tables;
    const price = tables.find((t) => t.name === "portal_land_price");
    ov = {
      zones_layer: pub.layers.some((l) => l.name === "portal_zones") ? "portal_zones" : null,
      price_table: price ? price.name : null,
      price_unit: "元/平方米",
      clause: "004 (九)",
      synthetic: pub.layers.some((l) => l.name === "portal_zones" && l.synthetic),
      tables,
    };
  }
  root.append(
    h("h1", {}, "公众门户"),
    h("p", { class: "muted" }, "本页只显示已公开的图层与数据表, 无需登录。"),
  );

  // 区片容积率一张图
  if (ov.zones_layer) {
    const info = pub.layers.find((l) => l.name === ov.zones_layer);
    const mapEl = h("div", { class: "map portal-map", id: "portal-map" });
    const legend = h("ul", { class: "legend inline" }, FAR_STEPS.map(([v, c]) => h("li", {}, h("i", { style: `background:${c}` }), `容积率 ≥ ${v}`)));
    root.append(section("区片容积率一张图", h("p", {}, info ? info.title : ov.zones_layer, " ", syntheticBadge(ov.synthetic), ` 依据 ${ov.clause}`), mapEl, legend));
    const tj = await api(`/tiles/${encodeURIComponent(ov.zones_layer)}.json`);
    map = createMap(mapEl, { bounds: tj.bounds });
    map.on("load", () => {
      map.addSource("zones", { type: "vector", tiles: [tileUrl(ov.zones_layer)], maxzoom: 16 });
      const colour = ["step", ["to-number", ["get", "far"], 0], "#f7f7f7", ...FAR_STEPS.flat()];
      map.addLayer({ id: "zones-fill", type: "fill", source: "zones", "source-layer": ov.zones_layer, paint: { "fill-color": colour, "fill-opacity": 0.8 } });
      map.addLayer({ id: "zones-line", type: "line", source: "zones", "source-layer": ov.zones_layer, paint: { "line-color": "#555", "line-width": 0.8 } });
      const town = pub.layers.find((l) => l.name === "dongguan_towns");
      if (town) {
        map.addSource("towns", { type: "vector", tiles: [tileUrl(town.name)], maxzoom: 16 });
        map.addLayer({ id: "towns-line", type: "line", source: "towns", "source-layer": town.name, paint: { "line-color": "#333", "line-width": 1, "line-dasharray": [3, 1] } }, "zones-fill");
      }
      map.on("click", "zones-fill", (ev) => {
        const p = ev.features[0].properties;
        pop.replaceChildren(h("strong", {}, `${p.zone_id} · ${p.town} · ${p.land_use}`), h("div", {}, `楼面地价 ${fmt(+p.price_yuan_m2)} ${ov.price_unit.split(" ")[0]} · 容积率 ${p.far}`), syntheticBadge(true));
      });
    });
    map.on("idle", () => mapEl.setAttribute("data-idle", "1"));
    const pop = h("div", { class: "info", id: "zone-info" }, h("span", { class: "muted" }, "点击区片查看地价与容积率。"));
    root.append(pop);
  }

  // 区片地价一张表
  if (ov.price_table) {
    try {
      const t = await api(`/api/public/tables/${encodeURIComponent(ov.price_table)}`);
      const rows = t.rows || t.records || [];
      root.append(
        section(
          "区片地价一张表",
          h("p", {}, syntheticBadge(ov.synthetic), ` 单位: ${ov.price_unit}; 依据 ${ov.clause}。演示数据为合成数据, 不是真实地价。`),
          table(
            rows,
            [
              { key: "zone_id", label: "区片" },
              { key: "town", label: "镇街" },
              { key: "land_use", label: "用途" },
              { key: "price_yuan_m2", label: "楼面地价 (元/㎡)", fmt: (v) => fmt(v, 0) },
              { key: "far", label: "容积率", fmt: (v) => fmt(v, 1) },
              { key: "area_m2", label: "面积 (公顷)", fmt: (v) => fmt(v / 1e4, 1) },
              { key: "valuation_date", label: "估价期日" },
            ],
            { caption: "区片地价一张表 (合成数据)" },
          ),
        ),
      );
    } catch (e) {
      root.append(h("p", { class: "error-text" }, errorText(e)));
    }
  }

  // other published tables: reduction results, headline indicators …
  const others = ov.tables.filter((t) => t.name !== ov.price_table);
  for (const t of others) {
    try {
      const body = await api(`/api/public/tables/${encodeURIComponent(t.name)}`, { query: { limit: 200 } });
      const rows = body.rows || body.records || [];
      const cols = (body.columns || Object.keys(rows[0] || {})).slice(0, 10).map((c) => ({
        key: c,
        label: c,
        fmt: (v) => (c === "status" || c === "status_label" ? badge(fmt(v), "st-" + v) : fmt(v)),
      }));
      root.append(section(`${t.portal_title || t.title || t.name}`, table(rows, cols)));
    } catch (e) {
      root.append(h("p", { class: "error-text" }, `${t.name}: ${errorText(e)}`));
    }
  }
  root.append(
    section(
      "公开图层",
      table(pub.layers, [
        { key: "title", label: "图层", fmt: (v, r) => h("span", {}, v || r.name, " ", syntheticBadge(r.synthetic)) },
        { key: "kind", label: "类型", fmt: (v) => KIND_ZH[v] || v },
        { key: "feature_count", label: "要素数" },
        { key: "current_snapshot", label: "当前快照" },
        { key: "items", label: "OGC API", fmt: (v) => h("a", { href: v }, "要素") },
      ]),
    ),
  );
}
