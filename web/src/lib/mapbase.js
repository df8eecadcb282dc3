// MapLibre set-up shared by the map viewer and the portal: no online basemap, no glyphs.
import * as maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";

// MapLibre 6 runs its worker from a separate module, shipped beside the bundle (vite.config.js).
maplibregl.setWorkerUrl(new URL(/* @vite-ignore */ "./maplibre-gl-worker.mjs", import.meta.url).href);

export { maplibregl };

export const KIND_ZH = {
  boundary: "行政界线",
  survey: "国土调查",
  plan: "规划",
  control_line: "控制线",
  plot: "减量地块",
  project: "项目",
  other: "其他",
};

export const KIND_COLOUR = { plot: "#d7301f", project: "#6a51a3", plan: "#2b8cbe", control_line: "#e31a1c", other: "#fd8d3c", survey: "#bdbdbd", boundary: "#444" };

export function createMap(container, { bounds } = {}) {
  const map = new maplibregl.Map({
    container,
    style: {
      version: 8,
      name: "yizhangtu",
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#eef2f4" } }],
    },
    center: [116.45, 39.95],
    zoom: 9,
    maxZoom: 19,
    attributionControl: false,
    localIdeographFontFamily: "'Noto Sans CJK SC', 'Noto Sans SC', 'Microsoft YaHei', sans-serif",
    dragRotate: false,
    pitchWithRotate: false,
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  map.addControl(new maplibregl.AttributionControl({ compact: true, customAttribution: "数据: 本平台工作空间 · 无在线底图" }), "bottom-right");
  if (bounds) map.fitBounds(bounds, { padding: 30, duration: 0 });
  return map;
}

export function tileUrl(layer, snapshotId) {
  const base = `${location.origin}/tiles/${encodeURIComponent(layer)}/{z}/{x}/{y}.mvt`;
  return snapshotId ? `${base}?snapshot=${encodeURIComponent(snapshotId)}` : base;
}

/** Union of [w, s, e, n] boxes. */
export function unionBounds(list) {
  const ok = list.filter((b) => b && b.length === 4 && b.every(Number.isFinite));
  if (!ok.length) return null;
  return [Math.min(...ok.map((b) => b[0])), Math.min(...ok.map((b) => b[1])), Math.max(...ok.map((b) => b[2])), Math.max(...ok.map((b) => b[3]))];
}

export function intersects(a, b) {
  return a && b && a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
}

/** A label point for a polygon feature: label_lon/label_lat when given, else the centre of the largest ring's box. */
export function labelPoint(f) {
  const p = f.properties || {};
  if (Number.isFinite(+p.label_lon) && Number.isFinite(+p.label_lat) && p.label_lon !== null) return [+p.label_lon, +p.label_lat];
  const g = f.geometry;
  if (!g) return null;
  const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
  let best = null;
  let bestSize = -1;
  for (const rings of polys) {
    const xs = rings[0].map((c) => c[0]);
    const ys = rings[0].map((c) => c[1]);
    const b = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    const size = (b[2] - b[0]) * (b[3] - b[1]);
    if (size > bestSize) {
      bestSize = size;
      best = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
    }
  }
  return best;
}

/** HTML labels (no glyph PBFs needed): one marker per feature, CJK rendered by the browser's fonts. */
export function addLabels(map, features, nameField = "name") {
  const markers = [];
  for (const f of features) {
    const name = f.properties && f.properties[nameField];
    const at = labelPoint(f);
    if (!name || !at) continue;
    const el = document.createElement("div");
    el.className = "map-label";
    el.textContent = name;
    markers.push(new maplibregl.Marker({ element: el }).setLngLat(at).addTo(map));
  }
  return () => markers.forEach((m) => m.remove());
}
