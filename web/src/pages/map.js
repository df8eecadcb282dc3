// 一张图 map viewer: catalogue tree, land-use styling, snapshot slider, identify, area measurement, snapshot diff.
import { api, errorText } from "../api.js";
import { geometryArea, ringArea } from "../lib/geodesic.js";
import { KIND_COLOUR, KIND_ZH, addLabels, createMap, intersects, tileUrl, unionBounds } from "../lib/mapbase.js";
import { fillExpression, legend, loadPalette } from "../lib/palette.js";
import { areaText, fmt, h, syntheticBadge, table, toast } from "../ui.js";

const KIND_ORDER = ["survey", "plan", "control_line", "project", "other", "plot", "boundary"];
const CHANGE = {
  added: ["新增", "#1a9850"],
  removed: ["删除", "#d73027"],
  geometry: ["图形变化", "#fc8d59"],
  attributes: ["属性变化", "#4575b4"],
  "geometry+attributes": ["图形和属性变化", "#984ea3"],
};


export async function render(root, { params, session }) {
  const staff = session.staff;
  const [cat, palette] = await Promise.all([api(staff ? "/api/layers" : "/api/public/layers"), loadPalette()]);
  const layers = cat.layers.filter((l) => l.current_snapshot !== null && l.snapshots.length);
  const byName = Object.fromEntries(layers.map((l) => [l.name, l]));

  const panel = h("aside", { class: "panel", id: "map-panel" });
  const mapEl = h("div", { class: "map", id: "map" });
  root.classList.add("map-page");
  root.append(panel, mapEl);

  // TileJSON gives each layer's extent (inside the user's jurisdiction)
  const tj = {};
  await Promise.all(
    layers.map(async (l) => {
      try {
        tj[l.name] = await api(`/tiles/${encodeURIComponent(l.name)}.json`);
      } catch {
        tj[l.name] = null;
      }
    }),
  );
  // the catalogue gives code_system; the code field comes from it, or from the tile fields
  const CODE_FIELDS = ["DLBM", "YDYHDM", "YDYHFLDM", "GHDLBM", "DLDM", "land_use_code", "code"];
  for (const l of layers) {
    if (l.code_system && !l.code_field && tj[l.name]) {
      const fields = Object.keys((tj[l.name].vector_layers || [{}])[0].fields || {});
      l.code_field = CODE_FIELDS.find((f) => fields.includes(f)) || null;
    }
  }
  const bbox = (name) => (tj[name] && tj[name].bounds && tj[name].bounds[0] > -180 ? tj[name].bounds : null);

  // which layers start visible: ?layers=a,b or the data layers plus the finest boundary over them
  const state = { on: new Set(), snap: {}, labels: {} };
  const asked = (params.get("layers") || "").split(",").filter((n) => byName[n]);
  if (asked.length) asked.forEach((n) => state.on.add(n));
  else {
    // anchor on the layers filtered to the user's jurisdiction, else on the first data layer;
    // show the data layers over that area and the tightest boundary layer around it
    const data = layers.filter((l) => l.kind !== "boundary" && l.feature_count > 0 && bbox(l.name));
    const anchors = data.filter((l) => l.filtered_by_jurisdiction);
    state.anchor = unionBounds((anchors.length ? anchors : data.slice(0, 1)).map((l) => bbox(l.name)));
    data.filter((l) => !state.anchor || intersects(state.anchor, bbox(l.name))).forEach((l) => state.on.add(l.name));
    const a = state.anchor;
    const centre = a ? [(a[0] + a[2]) / 2, (a[1] + a[3]) / 2] : null;
    const size = (b) => (b[2] - b[0]) * (b[3] - b[1]);
    const bounds = layers
      .filter((l) => l.kind === "boundary" && l.feature_count <= 500 && bbox(l.name))
      .filter((l) => !centre || intersects([...centre, ...centre], bbox(l.name)))
      .sort((x, y) => size(bbox(x.name)) - size(bbox(y.name)));
    if (bounds[0]) state.on.add(bounds[0].name);
    else if (!data.length && layers[0]) state.on.add(layers[0].name);
  }
  for (const l of layers) state.snap[l.name] = null; // null: current snapshot

  const map = createMap(mapEl);
  const cleanup = [];
  let alive = true;
  const destroy = () => {
    alive = false;
    cleanup.forEach((f) => f());
    map.remove();
  };
  window.yz = { map, state };
  await new Promise((res) => map.once("load", res));

  // ---------------------------------------------------------------- layers
  const ordered = [...layers].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  for (const l of ordered) {
    const src = `src-${l.name}`;
    map.addSource(src, { type: "vector", tiles: [tileUrl(l.name)], minzoom: 0, maxzoom: 16 });
    const vis = state.on.has(l.name) ? "visible" : "none";
    const code = l.code_system && l.code_field ? fillExpression(palette, l.code_system, l.code_field) : null;
    if (l.kind !== "boundary") {
      map.addLayer({
        id: `fill-${l.name}`,
        type: "fill",
        source: src,
        "source-layer": l.name,
        layout: { visibility: vis },
        paint: { "fill-color": code || KIND_COLOUR[l.kind] || "#888", "fill-opacity": code ? 0.85 : l.kind === "plot" ? 0.55 : 0.4 },
      });
    } else {
      map.addLayer({ id: `fill-${l.name}`, type: "fill", source: src, "source-layer": l.name, layout: { visibility: vis }, paint: { "fill-color": "#ffffff", "fill-opacity": 0.01 } });
    }
    map.addLayer({
      id: `line-${l.name}`,
      type: "line",
      source: src,
      "source-layer": l.name,
      layout: { visibility: vis },
      paint:
        l.kind === "boundary"
          ? { "line-color": "#333", "line-width": ["interpolate", ["linear"], ["zoom"], 8, 0.6, 14, 2], "line-dasharray": [3, 1] }
          : { "line-color": code ? "#777" : l.kind === "plot" ? "#7f0000" : KIND_COLOUR[l.kind] || "#555", "line-width": l.kind === "plot" ? 2.5 : code ? 0.4 : 1 },
    });
  }
  // overlays: diff, highlight, measurement
  map.addSource("diff", { type: "geojson", data: empty() });
  map.addLayer({ id: "diff-fill", type: "fill", source: "diff", paint: { "fill-color": diffColour(), "fill-opacity": 0.6 } });
  map.addLayer({ id: "diff-line", type: "line", source: "diff", paint: { "line-color": diffColour(), "line-width": 1.5 } });
  map.addSource("hl", { type: "geojson", data: empty() });
  map.addLayer({ id: "hl-line", type: "line", source: "hl", paint: { "line-color": "#00e5ff", "line-width": 3 } });
  map.addSource("measure", { type: "geojson", data: empty() });
  map.addLayer({ id: "measure-fill", type: "fill", source: "measure", filter: ["==", ["geometry-type"], "Polygon"], paint: { "fill-color": "#ffeb3b", "fill-opacity": 0.35 } });
  map.addLayer({ id: "measure-line", type: "line", source: "measure", paint: { "line-color": "#f57f17", "line-width": 2 } });
  map.addLayer({ id: "measure-pts", type: "circle", source: "measure", filter: ["==", ["geometry-type"], "Point"], paint: { "circle-radius": 4, "circle-color": "#f57f17" } });

  const ext = state.anchor || unionBounds([...state.on].filter((n) => byName[n].kind !== "boundary").map(bbox)) || unionBounds([...state.on].map(bbox));
  if (ext) map.fitBounds(ext, { padding: 40, duration: 0, maxZoom: 15 });

  // ---------------------------------------------------------------- panel: catalogue
  const info = h("div", { id: "identify", class: "info" }, h("p", { class: "muted" }, "点击地图上的图斑查看属性。"));
  const legendBox = h("div", { id: "legend" });

  function setVisible(name, on) {
    if (on) state.on.add(name);
    else state.on.delete(name);
    for (const p of ["fill", "line"]) map.setLayoutProperty(`${p}-${name}`, "visibility", on ? "visible" : "none");
    refreshLabels(name);
    renderLegend();
  }

  async function refreshLabels(name) {
    const l = byName[name];
    if (state.labels[name]) {
      state.labels[name]();
      delete state.labels[name];
    }
    if (!state.on.has(name) || l.kind !== "boundary" || l.feature_count > 120) return;
    try {
      const fc = await api(`/ogc/collections/${encodeURIComponent(name)}/items`, { query: { limit: 200 } });
      if (state.on.has(name) && alive) state.labels[name] = addLabels(map, fc.features);
    } catch {
      /* labels are optional */
    }
  }

  const tree = h("div", { class: "tree", id: "catalogue" });
  const groups = {};
  for (const l of ordered) (groups[l.kind] ||= []).push(l);
  for (const kind of KIND_ORDER.filter((k) => groups[k])) {
    const det = h("details", { open: true }, h("summary", {}, `${KIND_ZH[kind] || kind} (${groups[kind].length})`));
    for (const l of groups[kind]) {
      const cb = h("input", { type: "checkbox", id: `cb-${l.name}`, dataset: { layer: l.name } });
      cb.checked = state.on.has(l.name);
      cb.addEventListener("change", () => setVisible(l.name, cb.checked));
      det.append(
        h(
          "div",
          { class: "tree-item" },
          cb,
          h("label", { for: `cb-${l.name}`, title: l.description || l.name }, l.title || l.name),
          syntheticBadge(l.synthetic),
          h("span", { class: "muted small" }, ` ${fmt(l.feature_count)}`),
          l.filtered_by_jurisdiction ? h("span", { class: "badge", title: "只显示本辖区要素" }, "本辖区") : null,
        ),
      );
    }
    tree.append(det);
  }

  function renderLegend() {
    const items = [];
    for (const name of state.on) {
      const l = byName[name];
      if (l.code_system && l.code_field) {
        const ent = legend(palette, l.code_system);
        if (ent.length) {
          const sys = palette.systems[l.code_system] || palette.systems[palette.aliases[l.code_system]];
          items.push(
            h("h4", {}, `${l.title || l.name} · ${l.code_field}`),
            h("ul", { class: "legend" }, ent.map((e) => h("li", {}, h("i", { style: `background:${e.color}` }), `${e.code} ${e.name}`))),
            sys && !sys.verified ? h("p", { class: "muted small" }, "配色未与官方色表核对 (见 palettes/landuse-colours.json)") : null,
          );
        }
      }
    }
    legendBox.replaceChildren(...items);
  }

  // ---------------------------------------------------------------- snapshot slider
  const multi = layers.filter((l) => l.snapshots.length > 1);
  const timeBox = h("div", { id: "timeline" });
  function renderTimeline() {
    if (!multi.length) {
      timeBox.replaceChildren(h("p", { class: "muted" }, "没有多期快照的图层。"));
      return;
    }
    const pick = h("select", { id: "time-layer" }, multi.map((l) => h("option", { value: l.name }, l.title || l.name)));
    const firstOn = multi.find((l) => state.on.has(l.name));
    if (firstOn) pick.value = firstOn.name;
    const slider = h("input", { type: "range", id: "time-slider", min: 0, step: 1 });
    const label = h("output", { id: "time-label" });
    const sync = () => {
      const l = byName[pick.value];
      slider.max = l.snapshots.length - 1;
      const cur = state.snap[l.name];
      const idx = cur ? l.snapshots.findIndex((s) => s.id === cur) : l.snapshots.findIndex((s) => s.label === l.current_snapshot);
      slider.value = idx < 0 ? l.snapshots.length - 1 : idx;
      show();
    };
    const show = () => {
      const l = byName[pick.value];
      const s = l.snapshots[+slider.value];
      label.textContent = `${s.label}${s.obs_date ? " · " + s.obs_date : ""} · ${fmt(s.feature_count)} 个要素`;
    };
    slider.addEventListener("input", show);
    slider.addEventListener("change", () => {
      const l = byName[pick.value];
      const s = l.snapshots[+slider.value];
      state.snap[l.name] = s.id;
      map.getSource(`src-${l.name}`).setTiles([tileUrl(l.name, s.id)]);
      if (!state.on.has(l.name)) {
        setVisible(l.name, true);
        document.getElementById(`cb-${l.name}`).checked = true;
      }
    });
    pick.addEventListener("change", sync);
    timeBox.replaceChildren(h("label", { for: "time-layer" }, "图层"), pick, h("label", { for: "time-slider" }, "快照"), slider, label);
    sync();
  }

  // ---------------------------------------------------------------- identify
  let measuring = false;
  map.on("click", async (ev) => {
    if (measuring) return;
    const ids = [...state.on].map((n) => `fill-${n}`).concat(["diff-fill"]);
    const rank = (f) => (f.layer.id === "diff-fill" ? 0 : byName[f.layer.id.slice(5)]?.kind === "boundary" ? 2 : 1);
    const hits = map.queryRenderedFeatures(ev.point, { layers: ids }).sort((a, b) => rank(a) - rank(b));
    if (!hits.length) return;
    const f = hits[0];
    if (f.layer.id === "diff-fill") {
      showAttributes("快照比较", f.properties, null, f.geometry);
      return;
    }
    const name = f.layer.id.slice(5);
    const fid = f.id ?? f.properties.fid;
    if (fid === undefined || fid === null) {
      showAttributes(byName[name].title || name, f.properties, null, null);
      return;
    }
    try {
      const q = state.snap[name] ? { snapshot: state.snap[name] } : {};
      const feat = await api(`/ogc/collections/${encodeURIComponent(name)}/items/${fid}`, { query: q });
      showAttributes(byName[name].title || name, feat.properties, fid, feat.geometry);
      map.getSource("hl").setData({ type: "FeatureCollection", features: [{ type: "Feature", geometry: feat.geometry, properties: {} }] });
    } catch (e) {
      toast(errorText(e), "error");
    }
  });
  map.on("mousemove", (ev) => {
    if (measuring) return;
    const ids = [...state.on].map((n) => `fill-${n}`).filter((id) => !id.includes("boundary"));
    const hits = map.queryRenderedFeatures(ev.point, { layers: ids });
    map.getCanvas().style.cursor = hits.length ? "pointer" : "";
  });

  function showAttributes(title, props, fid, geom) {
    const rows = Object.entries(props || {}).filter(([k]) => k !== "geometry").map(([k, v]) => ({ k, v }));
    const area = geom ? geometryArea(geom) : null;
    info.replaceChildren(
      h("h3", {}, title, fid !== null && fid !== undefined ? h("span", { class: "muted small" }, ` #${fid}`) : null),
      area ? h("p", { class: "area" }, "椭球面积 (CGCS2000): ", areaText(area)) : null,
      table(rows, [
        { key: "k", label: "字段" },
        { key: "v", label: "值" },
      ]),
    );
  }

  // ---------------------------------------------------------------- area measurement
  let pts = [];
  const measureOut = h("output", { id: "measure-result" });
  const measureBtn = h("button", { id: "measure-btn", type: "button" }, "量算面积");
  const finishBtn = h("button", { id: "measure-finish", type: "button", disabled: true }, "完成");
  function drawMeasure(closed) {
    state.measure = pts.slice();
    const feats = pts.map((p) => ({ type: "Feature", geometry: { type: "Point", coordinates: p }, properties: {} }));
    if (pts.length >= 2) feats.push({ type: "Feature", geometry: { type: "LineString", coordinates: closed ? [...pts, pts[0]] : pts }, properties: {} });
    if (pts.length >= 3) feats.push({ type: "Feature", geometry: { type: "Polygon", coordinates: [[...pts, pts[0]]] }, properties: {} });
    map.getSource("measure").setData({ type: "FeatureCollection", features: feats });
    if (pts.length >= 3) {
      const r = ringArea(pts);
      measureOut.textContent = `面积 ${areaText(r.area)}; 周长 ${fmt(r.perimeter, 1)} 米`;
      measureOut.dataset.m2 = String(r.area);
    } else {
      measureOut.textContent = pts.length ? `已取 ${pts.length} 个点, 至少 3 个点` : "";
    }
  }
  function stopMeasure() {
    measuring = false;
    map.doubleClickZoom.enable();
    measureBtn.textContent = "量算面积";
    finishBtn.disabled = true;
    map.getCanvas().style.cursor = "";
    drawMeasure(true);
  }
  measureBtn.addEventListener("click", () => {
    if (measuring) {
      pts = [];
      stopMeasure();
      measureOut.textContent = "";
      return;
    }
    measuring = true;
    pts = [];
    drawMeasure(false);
    map.doubleClickZoom.disable();
    map.getCanvas().style.cursor = "crosshair";
    measureBtn.textContent = "取消量算";
    finishBtn.disabled = false;
    measureOut.textContent = "在地图上依次点击多边形顶点, 双击或点“完成”结束。";
  });
  finishBtn.addEventListener("click", stopMeasure);
  map.on("click", (ev) => {
    if (!measuring) return;
    pts.push([ev.lngLat.lng, ev.lngLat.lat]);
    drawMeasure(false);
  });
  map.on("dblclick", (ev) => {
    if (!measuring) return;
    ev.preventDefault();
    stopMeasure();
  });

  // ---------------------------------------------------------------- snapshot comparison (diff API)
  const cmpBox = h("div", { id: "compare" });
  function renderCompare() {
    if (!multi.length) {
      cmpBox.replaceChildren(h("p", { class: "muted" }, "没有多期快照的图层。"));
      return;
    }
    const pick = h("select", { id: "cmp-layer" }, multi.map((l) => h("option", { value: l.name }, l.title || l.name)));
    const from = h("select", { id: "cmp-from" });
    const to = h("select", { id: "cmp-to" });
    const out = h("div", { id: "cmp-result" });
    const fill = () => {
      const l = byName[pick.value];
      const opts = () => l.snapshots.map((s) => h("option", { value: s.id }, s.label));
      from.replaceChildren(...opts());
      to.replaceChildren(...opts());
      from.selectedIndex = Math.max(0, l.snapshots.length - 2);
      to.selectedIndex = l.snapshots.length - 1;
    };
    pick.addEventListener("change", fill);
    fill();
    const go = h("button", { type: "button", id: "cmp-go" }, "比较");
    const clear = h("button", { type: "button", class: "link" }, "清除");
    go.addEventListener("click", async () => {
      out.replaceChildren(h("p", { class: "muted" }, "正在比较…"));
      try {
        const r = await api(`/api/layers/${encodeURIComponent(pick.value)}/diff`, { query: { from: from.value, to: to.value, unit: "ha", features: "true" } });
        map.getSource("diff").setData(r.features || empty());
        const s = r.summary;
        const rows = Object.entries(CHANGE).map(([k, [zh, colour]]) => ({ k, zh, colour, n: (s.counts || {})[k] || 0, a: (s.areas || {})[k] || 0 }));
        out.replaceChildren(
          h("p", {}, `${s.from ? s.from.label : from.value} → ${s.to ? s.to.label : to.value}`),
          table(rows, [
            { key: "zh", label: "变化", fmt: (v, r) => h("span", {}, h("i", { class: "swatch", style: `background:${r.colour}` }), v) },
            { key: "n", label: "图斑数" },
            { key: "a", label: "面积 (公顷)", fmt: (v) => fmt(v, 2) },
          ], { rowClass: (r) => "chg-" + r.k.replace("+", "-") }),
        );
      } catch (e) {
        out.replaceChildren(h("p", { class: "error-text" }, errorText(e)));
      }
    });
    clear.addEventListener("click", () => {
      map.getSource("diff").setData(empty());
      out.replaceChildren();
    });
    cmpBox.replaceChildren(h("label", { for: "cmp-layer" }, "图层"), pick, h("div", { class: "row" }, from, h("span", {}, "→"), to), h("div", { class: "row" }, go, clear), out);
  }

  panel.append(
    h("h2", {}, "图层目录"),
    tree,
    legendBox,
    h("h2", {}, "时间轴"),
    timeBox,
    h("h2", {}, "量算"),
    h("div", { class: "row" }, measureBtn, finishBtn),
    measureOut,
    h("p", { class: "muted small" }, "面积按 CGCS2000 椭球 (GRS80) 用 GeographicLib 测地线算法在浏览器中计算, 与后台 ellipsoidal_area 一致。"),
    h("h2", {}, "快照比较"),
    cmpBox,
    h("h2", {}, "属性查询"),
    info,
  );
  renderLegend();
  renderTimeline();
  renderCompare();
  for (const n of state.on) refreshLabels(n);
  map.on("idle", () => mapEl.setAttribute("data-idle", "1"));
  map.on("movestart", () => mapEl.removeAttribute("data-idle"));
  cleanup.push(() => Object.values(state.labels).forEach((f) => f()));
  return { destroy };
}

function empty() {
  return { type: "FeatureCollection", features: [] };
}

function diffColour() {
  return ["match", ["get", "change"], ...Object.entries(CHANGE).flatMap(([k, [, c]]) => [k, c]), "#999"];
}
