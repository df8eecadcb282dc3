// Land-use colours are data (public/palettes/landuse-colours.json, served at /static/palettes/).
let cache = null;

export async function loadPalette() {
  if (!cache) cache = fetch("/static/palettes/landuse-colours.json").then((r) => r.json());
  return cache;
}

const rgb = (c) => `rgb(${c.rgb.join(",")})`;

export function systemOf(palette, codeSystem) {
  if (!codeSystem) return null;
  const id = palette.systems[codeSystem] ? codeSystem : palette.aliases[codeSystem];
  return id ? { id, ...palette.systems[id] } : null;
}

/** MapLibre expression colouring ``field`` by full code, then by its first two characters. */
export function fillExpression(palette, codeSystem, field) {
  const sys = systemOf(palette, codeSystem);
  if (!sys) return null;
  const code = ["to-string", ["coalesce", ["get", field], ""]];
  const full = [];
  const level1 = [];
  for (const [k, v] of Object.entries(sys.colours)) (k.length === 2 ? level1 : full).push(k, rgb(v));
  const byLevel1 = level1.length ? ["match", ["slice", code, 0, 2], ...level1, palette.fallback] : palette.fallback;
  return full.length ? ["match", code, ...full, byLevel1] : byLevel1;
}

/** Legend entries (level-1 classes) of a code system. */
export function legend(palette, codeSystem) {
  const sys = systemOf(palette, codeSystem);
  if (!sys) return [];
  return Object.entries(sys.colours)
    .filter(([k]) => k.length === 2)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, v]) => ({ code, name: v.name, color: rgb(v) }));
}
