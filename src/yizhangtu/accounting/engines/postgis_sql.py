"""PostGIS push-down of the tabulation: the same operation, run inside the database.

Area definition. Like the in-process engines, the SQL cuts in the stored CRS and measures
every feature and piece in one Lambert azimuthal equal-area plane on the GRS80 ellipsoid
centred on the units: ``ST_Area(ST_Transform(geom, <srid>))``, the plane being registered once
in ``spatial_ref_sys`` under a SRID derived from its PROJ string (``ST_Transform`` with a PROJ
string rebuilds the transformation for every row, ~8 ms each). That is the same ellipsoidal
area as :func:`yizhangtu.geo.area.ellipsoidal_area`, so results agree with the local engine on
the same data to floating-point noise.

``area_method='geography'`` instead measures each piece with ``ST_Area(geography)``, the
geodesic area on the spheroid of the data's SRID (WGS84 for 4326, CGCS2000 for 4490; both
share GRS80's semi-major axis and differ in flattening by ~1e-11, so by ~1e-11 in area). It
differs from ours only in how an edge runs between two vertices (a geodesic there, a chord of
the equal-area plane here): within the edges' bulge (``edge_bulge``), below 1e-7 relative for
parcel-sized edges and up to ~1e-5 for polygons with km-long edges in lon/lat.

Plan, the same as the local kernel's so that both cut exactly the same pieces: each unit
probes the layer's GiST index (``ST_Intersects(u.geom, l.geom)``, the unit's prepared geometry
cached across the probe); a feature wholly inside it (``ST_ContainsProperly``) adds its own
area with no intersection; the others are cut with ``ST_Intersection`` in the stored CRS
(where neighbours share vertices), and only the pieces are transformed for their area;
``GROUP BY unit, class``. No ``ST_Subdivide``: tile seams add vertices to the pieces, which
moves their measured areas (see :mod:`yizhangtu.accounting.engines.local`).

The caller passes an open psycopg 3 connection (anything with ``execute(sql, params)``); this
module imports no database driver.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from yizhangtu.accounting._checks import MAX_LISTED, _plain, raise_geometry_problems
from yizhangtu.accounting.engines.local import Projector, edge_bulge, proj_string
from yizhangtu.errors import CRSError, InputError, ValidationError
from yizhangtu.geo.area import equal_area_crs_for

__all__ = [
    "class_case",
    "ensure_equal_area_srid",
    "postgis_tabulate",
    "postgis_tabulate_sql",
    "sql_identifier",
    "sql_literal",
]

_GEOGRAPHIC_SRID = 4490  # CGCS2000 lon/lat; PROJ treats WGS84 <-> CGCS2000 as a null transform
_POLYGON_SQL = "ST_GeometryType({g}) IN ('ST_Polygon', 'ST_MultiPolygon')"


def sql_identifier(name: str) -> str:
    """Quote a (possibly schema-qualified) SQL identifier."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def sql_literal(value: Any) -> str:
    """Return an SQL literal for a string or number (standard-conforming strings)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(_plain(value))
    return "'" + str(value).replace("'", "''") + "'"


def _column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def class_case(class_field: str, class_map: Mapping[Any, Any], alias: str = "l") -> str:
    """Return an SQL ``CASE`` mapping raw codes of ``class_field`` to classes (NULL if unmapped)."""
    col = f"{alias}.{_column(class_field)}"
    whens = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in class_map.items())
    return f"(CASE {col} {whens} END)" if whens else "NULL"


def postgis_tabulate_sql(
    layer_table: str,
    units_table: str,
    *,
    class_expr: str,
    unit_field: str,
    equal_area_srid: int,
    layer_srid: int,
    geom_col: str = "geom",
    units_geom_col: str | None = None,
    area_method: Literal["laea", "geography"] = "laea",
) -> str:
    """Build the push-down query: one row per ``(unit, class)``.

    Columns: ``unit``, ``class``, ``area_m2``, ``pieces``, ``fast_path``.

    Parameters
    ----------
    layer_table, units_table : str
        Table names (``schema.table`` allowed); the layer should have a GiST index on
        ``geom_col``.
    class_expr : str
        SQL expression over the layer row ``l`` giving its class (e.g. ``l."dlbm"`` or the
        output of :func:`class_case`).
    unit_field : str
        Column of ``units_table`` naming each unit.
    equal_area_srid : int
        SRID of the job's equal-area plane, registered by :func:`ensure_equal_area_srid`
        (``ST_Transform`` with a PROJ string would rebuild the transformation for every row).
    layer_srid : int
        SRID of both tables' geometry.
    """
    lg = f"l.{_column(geom_col)}"
    ug = f"u.{_column(units_geom_col or geom_col)}"
    ea = int(equal_area_srid)

    def measure(g: str) -> str:
        if area_method == "laea":
            return f"ST_Area(ST_Transform({g}, {ea}))"
        return f"ST_Area(geography({_geographic(g, layer_srid)}))"

    if area_method not in ("laea", "geography"):
        raise InputError(f"未知的面积算法: {area_method}", key="unknown_area_method")
    return f"""
WITH units AS MATERIALIZED (
    SELECT u.{_column(unit_field)} AS unit, {ug} AS geom FROM {sql_identifier(units_table)} AS u
),
pairs AS (
    SELECT u.unit, {class_expr} AS class, {lg} AS lg, u.geom AS ug,
           ST_ContainsProperly(u.geom, {lg}) AS inside
    FROM units AS u
    JOIN {sql_identifier(layer_table)} AS l ON ST_Intersects(u.geom, {lg})
)
SELECT p.unit, p.class,
       SUM(CASE WHEN p.inside THEN {measure("p.lg")}
                ELSE {measure("ST_Intersection(p.lg, p.ug)")} END) AS area_m2,
       COUNT(*) AS pieces,
       COUNT(*) FILTER (WHERE p.inside) AS fast_path
FROM pairs AS p
GROUP BY p.unit, p.class
ORDER BY p.unit, p.class
""".strip()


def _fetch(conn: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    return list(conn.execute(sql, params).fetchall())


def postgis_tabulate(
    conn: Any,
    layer_table: str,
    units_table: str,
    *,
    unit_field: str,
    class_field: str | None = None,
    class_map: Mapping[Any, Any] | None = None,
    class_expr: str | None = None,
    valid_classes: Collection[Any] | None = None,
    geom_col: str = "geom",
    units_geom_col: str | None = None,
    id_field: str | None = None,
    area_method: Literal["laea", "geography"] = "laea",
    tolerance_m2: float = 1.0,
) -> Any:
    """Tabulate inside PostGIS and return an :class:`~yizhangtu.accounting.AreaTable`.

    The same checks as :func:`~yizhangtu.accounting.tabulate` run in SQL first: empty layer,
    missing or mixed SRIDs, invalid or non-polygonal features, unnamed units, unknown classes.

    Parameters
    ----------
    conn : psycopg.Connection
        Open connection (the caller owns the transaction).
    layer_table, units_table : str
        Table names.
    unit_field : str
        Unit name column.
    class_field : str, optional
        Raw class code column (reported in errors).
    class_map : mapping, optional
        Raw code → class (pushed down as a ``CASE``); unmapped codes are errors.
    class_expr : str, optional
        Raw SQL class expression over the layer row ``l`` (overrides the two above).
    valid_classes : collection, optional
        Allowed classes.
    id_field : str, optional
        Column identifying features in error reports (default ``ctid``).
    area_method : {'laea', 'geography'}
        See the module docstring.
    """
    from yizhangtu.accounting.tabulate import finish_table

    if class_expr is None:
        if class_field is None:
            raise InputError(
                "需要指定地类字段 class_field 或 class_expr", key="missing_class_field"
            )
        class_expr = (
            class_case(class_field, class_map)
            if class_map is not None
            else f"l.{_column(class_field)}"
        )
    raw_expr = f"l.{_column(class_field)}" if class_field else class_expr
    layer = sql_identifier(layer_table)
    units = sql_identifier(units_table)
    ug = _column(units_geom_col or geom_col)
    lg = _column(geom_col)
    ident = f"t.{_column(id_field)}::text" if id_field else "t.ctid::text"

    # --- units: count, SRID, names, QC
    nunits, usrids, unnamed = _fetch(
        conn,
        f"SELECT count(*), array_agg(DISTINCT ST_SRID({ug})), "
        f"count(*) FILTER (WHERE {_column(unit_field)} IS NULL) FROM {units}",
    )[0]
    if nunits == 0:
        raise InputError(
            "统计单元图层为空, 没有任何要素", key="empty_layer", data={"layer": "units"}
        )
    if unnamed:
        raise ValidationError(f"{unnamed} 个统计单元没有名称", key="unit_unnamed", field=unit_field)
    _raise_bad_rows(conn, units, ug, f"t.{_column(unit_field)}::text", "units")

    # --- layer: one pass for classes, counts, SRIDs, QC and total area (after the job CRS)
    usrid = _single_srid([s for s in usrids if s is not None], "units")
    xmin, ymin, xmax, ymax = _fetch(
        conn,
        f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
        f"(SELECT ST_Extent({_geographic(ug, usrid)}) AS e FROM {units}) AS s",
    )[0]
    job_crs = equal_area_crs_for(
        gpd.GeoSeries([shapely.box(xmin, ymin, xmax, ymax)], crs=_GEOGRAPHIC_SRID)
    )
    proj = proj_string(job_crs)
    ea = ensure_equal_area_srid(conn, job_crs)
    ok = (
        f"(l.{lg} IS NOT NULL AND NOT ST_IsEmpty(l.{lg}) "
        f"AND {_POLYGON_SQL.format(g='l.' + lg)} AND ST_IsValid(l.{lg}))"
    )
    totals = _fetch(
        conn,
        f"SELECT {raw_expr} AS raw, {class_expr} AS class, count(*), "
        f"sum(ST_Area(ST_Transform(l.{lg}, {ea}))) FILTER (WHERE {ok}), "
        f"count(*) FILTER (WHERE NOT {ok}), array_agg(DISTINCT ST_SRID(l.{lg})) "
        f"FROM {layer} AS l GROUP BY 1, 2",
    )
    nfeatures = sum(int(r[2]) for r in totals)
    if nfeatures == 0:
        raise InputError("图层为空, 没有任何要素", key="empty_layer", data={"layer": "layer"})
    lsrid = _single_srid({s for r in totals for s in r[5] if s is not None}, "layer")
    if lsrid != usrid:
        raise CRSError(
            f"图层 (SRID {lsrid}) 与统计单元图层 (SRID {usrid}) 的坐标参考系不一致, 拒绝混合计算",
            key="crs_mismatch",
            hint="先把两个表转换到同一坐标参考系再统计",
            data={"layer": lsrid, "units": usrid},
        )
    _check_classes(totals, valid_classes, class_field)
    if any(r[4] for r in totals):
        _raise_bad_rows(conn, layer, lg, ident, "layer")
    layer_area = float(sum(r[3] or 0.0 for r in totals))

    # --- unit areas and overlaps, in the same plane
    unit_rows = _fetch(
        conn,
        f"SELECT {_column(unit_field)}, ST_Area(ST_Transform({ug}, {ea})), ST_AsBinary({ug}) "
        f"FROM {units}",
    )
    names = pd.Index([r[0] for r in unit_rows], dtype=object)
    unit_areas = pd.Series([float(r[1]) for r in unit_rows], index=names)
    stored = _stored_crs(conn, lsrid)
    bulge = edge_bulge(
        np.asarray(shapely.from_wkb([bytes(r[2]) for r in unit_rows]), dtype=object),
        Projector.between(stored, job_crs),
    )
    unit_bulge = pd.Series(bulge, index=names)
    overlaps = _overlaps(conn, layer, units, unit_field, ug, lg, ea)

    # --- the push-down itself
    sql = postgis_tabulate_sql(
        layer_table,
        units_table,
        class_expr=class_expr,
        unit_field=unit_field,
        equal_area_srid=ea,
        layer_srid=lsrid,
        geom_col=geom_col,
        units_geom_col=units_geom_col,
        area_method=area_method,
    )
    result = _fetch(conn, sql)
    rows = pd.DataFrame(
        {
            "unit": pd.Series([r[0] for r in result], dtype=object),
            "class": pd.Series([r[1] for r in result], dtype=object),
            "area_m2": np.array([float(r[2]) for r in result]),
        }
    )
    stats = {
        "features": nfeatures,
        "pieces": int(sum(r[3] for r in result)),
        "fast_path": int(sum(r[4] for r in result)),
    }
    if area_method == "geography":
        stats["area_geography"] = 1
    return finish_table(
        rows=rows,
        unit_areas=unit_areas,
        unit_bulge=unit_bulge,
        layer_area_m2=layer_area,
        overlaps=overlaps,
        engine="postgis",
        stats=stats,
        equal_area_crs=proj,
        tolerance_m2=tolerance_m2,
        warnings=[],
    )


#: SRIDs PostGIS leaves to users; ours are derived from the PROJ string (stable per plane).
_SRID_FIRST, _SRID_SPAN = 910_000, 88_000


def ensure_equal_area_srid(conn: Any, crs: Any) -> int:
    """Register the job's equal-area plane in ``spatial_ref_sys`` (idempotent); return its SRID.

    The SRID is derived from the PROJ string, so the same plane always gets the same SRID.
    Needs INSERT on ``spatial_ref_sys`` the first time a plane is seen.
    """
    import hashlib

    from yizhangtu.errors import StoreError

    proj = proj_string(crs)
    srid = _SRID_FIRST + int(hashlib.sha1(proj.encode()).hexdigest()[:8], 16) % _SRID_SPAN
    for _ in range(64):
        found = _fetch(conn, "SELECT proj4text FROM spatial_ref_sys WHERE srid = %s", (srid,))
        if found and found[0][0] == proj:
            return srid
        if not found:
            allowed = _fetch(conn, "SELECT has_table_privilege('spatial_ref_sys', 'INSERT')")[0][0]
            if not allowed:
                raise StoreError(
                    "数据库用户无权在 spatial_ref_sys 中登记等积投影, 无法下推面积统计",
                    key="srid_register_denied",
                    hint="授予 INSERT ON spatial_ref_sys, 或由管理员预先登记该投影",
                    data={"srid": srid, "proj4text": proj},
                )
            conn.execute(
                "INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text) "
                "VALUES (%s, 'yizhangtu', %s, %s, %s) ON CONFLICT (srid) DO NOTHING",
                (srid, srid, crs.to_wkt(), proj),
            )
            continue  # re-read: another session may have won the race
        srid = _SRID_FIRST + (srid - _SRID_FIRST + 1) % _SRID_SPAN
    raise StoreError("无法为等积投影分配 SRID", key="srid_exhausted")


def _stored_crs(conn: Any, srid: int) -> Any:
    """Return the CRS of a SRID from ``spatial_ref_sys`` (authority code, else its WKT)."""
    from pyproj import CRS

    auth, code, wkt = _fetch(
        conn, "SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys WHERE srid = %s", (srid,)
    )[0]
    if auth and code and auth.upper() == "EPSG":
        return CRS.from_epsg(int(code))
    return CRS.from_user_input(wkt)


def _geographic(geom: str, srid: int) -> str:
    """Geometry expression in lon/lat (as is for WGS84/CGCS2000 lon/lat, else to CGCS2000)."""
    if srid in (4326, 4490):
        return geom
    return f"ST_Transform({geom}, {_GEOGRAPHIC_SRID})"


def _single_srid(srids: Collection[int], role: str) -> int:
    srids = sorted(set(srids))
    zh = "图层" if role == "layer" else "统计单元图层"
    if len(srids) > 1:
        raise CRSError(
            f"{zh}混有多个坐标参考系 (SRID {', '.join(map(str, srids))}), 拒绝混合计算",
            key="crs_mixed",
            data={"layer": role, "srids": srids},
        )
    if not srids or srids[0] == 0:
        raise CRSError(
            f"{zh}没有坐标参考系 (SRID 0)",
            key="crs_missing",
            hint="用 UpdateGeometrySRID 设置正确的 SRID",
            data={"layer": role},
        )
    return int(srids[0])


def _raise_bad_rows(conn: Any, table: str, geom: str, ident: str, role: str) -> None:
    g = f"t.{geom}"
    rows = _fetch(
        conn,
        f"SELECT {ident}, "
        f"CASE WHEN {g} IS NULL THEN '几何缺失' WHEN ST_IsEmpty({g}) THEN '几何为空' "
        f"WHEN NOT {_POLYGON_SQL.format(g=g)} THEN '不是面要素 (' || GeometryType({g}) || ')' "
        f"ELSE '几何无效: ' || ST_IsValidReason({g}) END "
        f"FROM {table} AS t WHERE {g} IS NULL OR ST_IsEmpty({g}) OR NOT {_POLYGON_SQL.format(g=g)} "
        f"OR NOT ST_IsValid({g}) LIMIT 1000",
    )
    raise_geometry_problems([(role, f, why) for f, why in rows])


def _check_classes(
    totals: list[tuple[Any, ...]], valid_classes: Collection[Any] | None, class_field: str | None
) -> None:
    allowed = set(valid_classes) if valid_classes is not None else None
    bad = [
        (raw, int(n))
        for raw, cls, n, *_ in totals
        if cls is None or (allowed is not None and cls not in allowed)
    ]
    if not bad:
        return
    bad.sort(key=lambda kv: -kv[1])
    items = [("<空>" if k is None else k, v) for k, v in bad]
    listed = ", ".join(f"{k} ({v} 个)" for k, v in items[:MAX_LISTED])
    raise ValidationError(
        f"{sum(v for _, v in items)} 个图斑的地类代码不在分类表中: {listed}",
        key="unknown_class",
        field=class_field,
        hint="核对地类代码, 或在分类表中补充这些代码后重试",
        data={"codes": [{"code": k, "count": v} for k, v in items]},
    )


def _overlaps(
    conn: Any, layer: str, units: str, unit_field: str, ug: str, lg: str, ea: int
) -> pd.DataFrame:
    """Pairwise unit overlaps and the layer area inside each (counted in both units)."""
    uf = _column(unit_field)
    rows = _fetch(
        conn,
        f"""
WITH u AS MATERIALIZED (
    SELECT row_number() OVER () AS rid, {uf} AS unit, {ug} AS geom FROM {units}
),
o AS MATERIALIZED (
    SELECT row_number() OVER () AS oid, a.unit AS ua, b.unit AS ub,
           ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) AS og
    FROM u AS a JOIN u AS b ON a.rid < b.rid AND ST_Relate(a.geom, b.geom, 'T********')
),
op AS MATERIALIZED (
    SELECT oid, ua, ub, og, ST_Area(ST_Transform(og, {ea})) AS area FROM o
    WHERE NOT ST_IsEmpty(og)
)
SELECT op.ua, op.ub, op.area,
       COALESCE(SUM(CASE WHEN ST_ContainsProperly(op.og, l.{lg})
                         THEN ST_Area(ST_Transform(l.{lg}, {ea}))
                         ELSE ST_Area(ST_Transform(ST_Intersection(l.{lg}, op.og), {ea})) END), 0)
FROM op LEFT JOIN {layer} AS l ON ST_Intersects(l.{lg}, op.og)
WHERE op.area > 0
GROUP BY op.oid, op.ua, op.ub, op.area
""",
    )
    return pd.DataFrame(
        {
            "unit_a": pd.Series([r[0] for r in rows], dtype=object),
            "unit_b": pd.Series([r[1] for r in rows], dtype=object),
            "area_m2": np.array([float(r[2]) for r in rows]),
            "layer_area_m2": np.array([float(r[3]) for r in rows]),
        }
    )
