// Ellipsoidal polygon area on the CGCS2000 ellipsoid with GeographicLib (Karney 2013),
// the algorithm behind pyproj.Geod and yizhangtu.geo.area.ellipsoidal_area.
import geodesic from "geographiclib-geodesic";

// CGCS2000: a = 6378137 m, f = 1/298.257222101 (the GRS80 ellipsoid).
export const CGCS2000 = { a: 6378137, f: 1 / 298.257222101 };
const geod = new geodesic.Geodesic.Geodesic(CGCS2000.a, CGCS2000.f);

/** Area (m²) and perimeter (m) of a ring of [lon, lat] pairs (closed or not). */
export function ringArea(ring) {
  const pts = ring.length > 1 && ring[0][0] === ring[ring.length - 1][0] && ring[0][1] === ring[ring.length - 1][1] ? ring.slice(0, -1) : ring;
  if (pts.length < 3) return { area: 0, perimeter: 0 };
  const poly = geod.Polygon(false);
  for (const [lon, lat] of pts) poly.AddPoint(lat, lon);
  const r = poly.Compute(false, true);
  return { area: Math.abs(r.area), perimeter: r.perimeter };
}

/** Area (m²) of a GeoJSON Polygon or MultiPolygon geometry (holes subtracted). */
export function geometryArea(geom) {
  const polys = geom.type === "Polygon" ? [geom.coordinates] : geom.type === "MultiPolygon" ? geom.coordinates : [];
  let total = 0;
  for (const rings of polys) rings.forEach((ring, i) => (total += (i === 0 ? 1 : -1) * ringArea(ring).area));
  return total;
}
