"""The QC checks (成果质量控制): :func:`run_qc` over one GeoDataFrame.

Every check is vectorised (shapely 2, numpy, pandas): masks and counts cover all features,
and only the first ``max_findings_per_check`` findings of each check (errors first) are
turned into :class:`Finding` objects with a location and a Chinese message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from yizhangtu.errors import InputError
from yizhangtu.geo.area import ellipsoidal_area, to_geographic
from yizhangtu.qc._geom import (
    FAMILY_TITLES,
    family_of,
    fmt_area,
    fmt_xy,
    layer_family,
    make_valid,
    parse_reason,
    polygonal,
    reason_zh,
    representative_xy,
)
from yizhangtu.qc.report import CHECKS, Finding, QCOptions, QCReport
from yizhangtu.qc.topology import coverage_flags, find_gaps, find_overlaps

__all__ = ["FeatureRefs", "blank_mask", "run_qc"]

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_MAX_LISTED = 10  # features or codes named inside one message


class FeatureRefs:
    """How findings name features: ``id_field`` value when set and present, else row label."""

    def __init__(self, gdf: gpd.GeoDataFrame, id_field: str | None) -> None:
        self.index = gdf.index
        self.id_field = id_field if id_field and id_field in gdf.columns else None
        self.ids = gdf[self.id_field].to_numpy(dtype=object) if self.id_field else None
        # Rows whose id is shared are also named by row label, so messages stay unambiguous.
        self.shared = (
            gdf[self.id_field].duplicated(keep=False).to_numpy(dtype=bool)
            if self.id_field
            else None
        )

    def key(self, i: int) -> int | str:
        """Return the identifier of row ``i`` (a position)."""
        if self.ids is not None:
            v = _py(self.ids[i])
            if v is not None and v != "":
                return v
        label = _py(self.index[i])
        return i if label is None else label

    def text(self, i: int) -> str:
        """Return the name of row ``i`` for a message, e.g. ``BSM=123`` or ``#5``."""
        if self.ids is not None:
            v = _py(self.ids[i])
            if v is not None and v != "":
                row = (
                    f" (#{_py(self.index[i])})"
                    if self.shared is not None and self.shared[i]
                    else ""
                )
                return f"{self.id_field}={v}{row}"
        return f"#{_py(self.index[i])}"

    def texts(self, rows: Iterable[int], total: int | None = None) -> str:
        """Return the names of several rows, the first few only."""
        rows = list(rows)
        shown = "、".join(self.text(i) for i in rows[:_MAX_LISTED])
        total = len(rows) if total is None else total
        return shown + (f" 等 {total} 个" if total > _MAX_LISTED else "")


def _py(v: object) -> int | str | None:
    """Plain Python id or index label: numpy → int/str, integral float → int, NaN → None."""
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float):
        if v != v:  # NaN
            return None
        return int(v) if v.is_integer() else str(v)
    if isinstance(v, int | str):
        return v
    return str(v)


def blank_mask(values: pd.Series) -> np.ndarray:
    """Return True where a value is null, NaN or blank text."""
    mask = values.isna().to_numpy(dtype=bool, copy=True)
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        text = values.astype("string").str.strip()
        mask |= (text == "").fillna(False).to_numpy(dtype=bool)
    return mask


def _code_text(values: pd.Series) -> np.ndarray:
    """Codes as text; integral floats (an integer column with nulls) lose their ``.0``."""
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype=float)
        return np.array(
            [str(int(v)) if np.isfinite(v) and float(v).is_integer() else str(v) for v in arr],
            dtype=object,
        )
    return values.astype("string").str.strip().to_numpy(dtype=object)  # NA stays NA


class _Run:
    """State of one :func:`run_qc` call."""

    def __init__(self, gdf: gpd.GeoDataFrame, options: QCOptions, file: str | None) -> None:
        self.gdf = gdf
        self.o = options
        self.file = file
        self.n = len(gdf)
        self.limit = options.max_findings_per_check
        self.geoms = np.asarray(gdf.geometry.values, dtype=object)
        self.refs = FeatureRefs(gdf, options.id_field)
        self.crs = CRS.from_user_input(gdf.crs) if gdf.crs is not None else None
        self.geographic = bool(self.crs is not None and self.crs.is_geographic)
        self.checks_run: list[str] = []
        self.findings: dict[str, list[Finding]] = {}
        self.counts: dict[str, int] = {}
        self.severity_counts = {"error": 0, "warning": 0, "info": 0}
        self.present = ~shapely.is_missing(self.geoms)
        self.empty = np.zeros(self.n, dtype=bool)
        self.empty[self.present] = shapely.is_empty(self.geoms[self.present])
        self.family = family_of(self.geoms)
        self._polys: np.ndarray | None = None

    # -- bookkeeping -------------------------------------------------------------------
    def record(
        self,
        check: str,
        severities: np.ndarray | str,
        rows: np.ndarray,
        make: Callable[[np.ndarray], list[Finding]],
    ) -> None:
        """Count all findings of ``check`` and build the first ``limit`` (errors first).

        ``rows`` are the positions (or other keys) passed to ``make`` in batches.
        """
        rows = np.asarray(rows)
        sev = (
            np.full(len(rows), severities, dtype=object)
            if isinstance(severities, str)
            else severities
        )
        self.checks_run.append(check)
        self.counts[check] = len(rows)
        for s in _SEVERITY_ORDER:
            self.severity_counts[s] += int(np.count_nonzero(sev == s))
        if len(rows) == 0:
            self.findings[check] = []
            return
        if isinstance(severities, str):
            order = np.arange(min(len(rows), self.limit))
        else:
            rank = np.select([sev == "error", sev == "warning"], [0, 1], 2)
            order = np.argsort(rank, kind="stable")[: self.limit]
        self.findings[check] = make(order)

    def feature_findings(
        self,
        check: str,
        severity: str | np.ndarray,
        rows: np.ndarray,
        message: Callable[[int, int], str],
        *,
        field: str | None = None,
        area: np.ndarray | None = None,
        geometry: bool = True,
    ) -> None:
        """Record one finding per row; ``message(k, row)`` gets the position k in ``rows``."""
        rows = np.asarray(rows, dtype=np.intp)
        sev_arr = (
            np.full(len(rows), severity, dtype=object) if isinstance(severity, str) else severity
        )

        def make(order: np.ndarray) -> list[Finding]:
            sel = rows[order]
            x, y = representative_xy(self.geoms[sel])
            return [
                Finding(
                    check=check,
                    severity=str(sev_arr[k]),
                    message=message(int(k), int(i)),
                    feature=self.refs.key(int(i)),
                    field=field,
                    x=_num(xi),
                    y=_num(yi),
                    area_m2=_num(area[k]) if area is not None else None,
                    geometry=self.geoms[i] if geometry else None,
                )
                for k, i, xi, yi in zip(order, sel, x, y, strict=True)
            ]

        self.record(check, sev_arr, rows, make)

    def xy(self, x: float | None, y: float | None) -> str:
        return fmt_xy(x, y, self.geographic)

    # -- checks ------------------------------------------------------------------------
    def check_crs(self) -> None:
        rows = np.zeros(0 if self.crs is not None else 1, dtype=np.intp)

        def make(order: np.ndarray) -> list[Finding]:
            return [
                Finding(
                    "missing_crs",
                    "error",
                    "图层没有坐标参考系, 无法按平方米计算面积; 碎片、重叠、缝隙检查未执行",
                    detail={"hint": "导入时用 --crs 指定坐标系, 如 EPSG:4490"},
                )
            ]

        self.record("missing_crs", "error", rows, make)

    def check_presence(self) -> None:
        self.feature_findings(
            "missing_geometry",
            "error",
            np.flatnonzero(~self.present),
            lambda k, i: f"要素 {self.refs.text(i)} 缺少几何",
            geometry=False,
        )
        self.feature_findings(
            "empty_geometry",
            "error",
            np.flatnonzero(self.empty),
            lambda k, i: f"要素 {self.refs.text(i)} 几何为空",
            geometry=False,
        )

    def check_validity(self) -> None:
        valid = np.ones(self.n, dtype=bool)
        live = self.present & ~self.empty
        valid[live] = shapely.is_valid(self.geoms[live])
        self.valid = valid
        rows = np.flatnonzero(~valid)

        def make(order: np.ndarray) -> list[Finding]:
            sel = rows[order]
            reasons = shapely.is_valid_reason(self.geoms[sel])
            out = []
            for i, raw in zip(sel, reasons, strict=True):
                text, x, y = parse_reason(raw)
                point = shapely.points(x, y) if x is not None and y is not None else None
                out.append(
                    Finding(
                        "invalid_geometry",
                        "error",
                        f"要素 {self.refs.text(int(i))} 几何无效: "
                        f"{reason_zh(text)} {self.xy(x, y)}".rstrip(),
                        feature=self.refs.key(int(i)),
                        reason=raw,
                        x=x,
                        y=y,
                        geometry=point if point is not None else self.geoms[i],
                    )
                )
            return out

        self.record("invalid_geometry", "error", rows, make)

    def check_dimensions(self) -> None:
        live = self.present & ~self.empty
        has_z = np.zeros(self.n, dtype=bool)
        has_m = np.zeros(self.n, dtype=bool)
        has_z[live] = shapely.has_z(self.geoms[live])
        if hasattr(shapely, "has_m"):
            has_m[live] = shapely.has_m(self.geoms[live])
        rows = np.flatnonzero(has_z | has_m)

        def msg(k: int, i: int) -> str:
            what = "Z 坐标和 M 值" if has_z[i] and has_m[i] else ("Z 坐标" if has_z[i] else "M 值")
            return f"要素 {self.refs.text(i)} 几何带有 {what}, 应为二维几何"

        self.feature_findings("z_or_m", "warning", rows, msg)

    def check_types(self) -> None:
        live = self.present & ~self.empty
        expected = self.o.expected_geometry
        fam = self.family
        if expected is None:
            expected = layer_family(fam, live)
        wrong = live & (fam != expected) if expected else live & (fam == "collection")
        rows = np.flatnonzero(wrong)
        expected_zh = FAMILY_TITLES.get(expected or "", "单一类型")

        def msg(k: int, i: int) -> str:
            actual = FAMILY_TITLES[fam[i]]
            return (
                f"要素 {self.refs.text(i)} 几何类型为{actual} ({self.geoms[i].geom_type}), "
                f"图层应为{expected_zh}"
            )

        self.feature_findings("mixed_geometry", "error", rows, msg)

        if self.o.expect_single:
            nparts = np.zeros(self.n, dtype=np.int64)
            multi = live & np.isin(shapely.get_type_id(self.geoms), (4, 5, 6))
            nparts[multi] = shapely.get_num_geometries(self.geoms[multi])
            rows = np.flatnonzero(nparts > 1)
            self.feature_findings(
                "multipart",
                "error",
                rows,
                lambda k, i: (
                    f"要素 {self.refs.text(i)} 为多部件几何 ({nparts[i]} 个部件), 应为单部件"
                ),
            )

    def check_fields(self) -> None:
        wanted = [f for f in (self.o.id_field, self.o.code_field, *self.o.required_fields) if f]
        fields = list(dict.fromkeys(wanted))
        if not fields:
            return
        absent = [f for f in fields if f not in self.gdf.columns]

        def make_absent(order: np.ndarray) -> list[Finding]:
            return [
                Finding("missing_field", "error", f"缺少必填字段 {absent[k]}", field=absent[k])
                for k in order
            ]

        self.record("missing_field", "error", np.arange(len(absent)), make_absent)

        rows_l, fields_l = [], []
        for f in fields:
            if f in self.gdf.columns:
                r = np.flatnonzero(blank_mask(self.gdf[f]))
                rows_l.append(r)
                fields_l.append(np.full(len(r), f, dtype=object))
        rows = np.concatenate(rows_l) if rows_l else np.zeros(0, dtype=np.intp)
        fnames = np.concatenate(fields_l) if fields_l else np.zeros(0, dtype=object)

        def make_blank(order: np.ndarray) -> list[Finding]:
            sel = rows[order]
            x, y = representative_xy(self.geoms[sel])
            return [
                Finding(
                    "missing_value",
                    "error",
                    f"要素 {self.refs.text(int(i))} 必填字段 {fnames[k]} 为空",
                    feature=self.refs.key(int(i)),
                    field=str(fnames[k]),
                    x=_num(xi),
                    y=_num(yi),
                    geometry=self.geoms[i],
                )
                for k, i, xi, yi in zip(order, sel, x, y, strict=True)
            ]

        self.record("missing_value", "error", rows, make_blank)

    def check_duplicate_ids(self) -> None:
        field = self.o.id_field
        assert field is not None
        if field not in self.gdf.columns:
            return  # reported as missing_field
        values = self.gdf[field]
        codes, _ = pd.factorize(values, use_na_sentinel=True)
        dup = values.duplicated(keep=False).to_numpy(dtype=bool) & (codes >= 0)
        dup &= ~blank_mask(values)
        idx = np.flatnonzero(dup)
        # factorize numbers values in order of first appearance: sorting by code groups
        # the rows sharing a value, groups in that order.
        rows = idx[np.lexsort((idx, codes[idx]))]
        group = codes[rows]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ends = np.r_[starts[1:], len(rows)]
        span = {int(group[s]): rows[s:e] for s, e in zip(starts, ends, strict=True) if s < e}

        def msg(k: int, i: int) -> str:
            members = span[int(codes[i])]
            return (
                f"要素 {self.refs.text(i)} 标识重复: 共 {len(members)} 个要素使用该值 "
                f"(行 {'、'.join('#' + str(_py(self.gdf.index[j])) for j in members[:_MAX_LISTED])}"
                f"{' 等' if len(members) > _MAX_LISTED else ''})"
            )

        self.feature_findings("duplicate_id", "error", rows, msg, field=field)

    def check_codes(self) -> None:
        field = self.o.code_field
        valid = self.o.valid_codes
        assert field is not None and valid is not None
        if field not in self.gdf.columns:
            self.record("unknown_code", "error", np.zeros(0, dtype=np.intp), lambda o: [])
            return
        values = self.gdf[field]
        text = _code_text(values)
        blank = blank_mask(values)
        known = pd.Series(text).isin(valid).to_numpy(dtype=bool)
        bad = np.flatnonzero(~blank & ~known)
        series = pd.Series(text[bad])
        tally = series.value_counts(sort=True)  # distinct unknown codes, most frequent first
        codes = [str(c) for c in tally.index]
        by_code = pd.Series(bad).groupby(series.to_numpy()).agg(list).to_dict() if len(bad) else {}

        def make(order: np.ndarray) -> list[Finding]:
            out = []
            for k in order:
                code = codes[k]
                rows = by_code[code]
                first = int(rows[0])
                x, y = representative_xy(self.geoms[[first]])
                out.append(
                    Finding(
                        "unknown_code",
                        "error",
                        f"字段 {field} 的编码 '{code}' 不在代码表中: {len(rows)} 个要素 "
                        f"({self.refs.texts(rows)})",
                        feature=self.refs.key(first),
                        field=field,
                        reason=code,
                        x=_num(x[0]),
                        y=_num(y[0]),
                        detail={
                            "code": code,
                            "count": len(rows),
                            "features": [self.refs.key(int(r)) for r in rows[:100]],
                        },
                    )
                )
            return out

        self.record("unknown_code", "error", np.arange(len(codes)), make)

    # -- polygon checks ----------------------------------------------------------------
    @property
    def polys(self) -> np.ndarray:
        """Polygonal part of each feature (repaired when invalid); None when it has none."""
        if self._polys is None:
            live = self.present & ~self.empty
            out = np.full(self.n, None, dtype=object)
            # Valid (Multi)Polygons are used as they are; invalid ones are repaired and
            # collections reduced to their polygons.
            direct = live & self.valid & (self.family == "polygon")
            out[direct] = self.geoms[direct]
            other = live & ~direct & ((self.family == "polygon") | (self.family == "collection"))
            if other.any():
                out[other] = polygonal(make_valid(self.geoms[other]))
            self._polys = out
        return self._polys

    def area(self, geoms: np.ndarray) -> np.ndarray:
        return ellipsoidal_area(gpd.GeoSeries(geoms, crs=self.gdf.crs))

    def check_slivers(self) -> None:
        polys = self.polys
        has = np.flatnonzero(~shapely.is_missing(polys))
        areas = self.area(polys[has])
        small = areas < self.o.sliver_area_m2
        thin = np.zeros(len(has), dtype=bool)
        pp = np.full(len(has), np.nan)
        if self.o.sliver_thinness is not None and len(has):
            pp = _polsby_popper(gpd.GeoSeries(polys[has], crs=self.gdf.crs))
            thin = pp < self.o.sliver_thinness
        hit = small | thin
        rows = has[hit]
        a, p, s_, t_ = areas[hit], pp[hit], small[hit], thin[hit]

        def msg(k: int, i: int) -> str:
            parts = []
            if s_[k]:
                parts.append(f"面积 {fmt_area(a[k])} ㎡ 小于 {fmt_area(self.o.sliver_area_m2)} ㎡")
            if t_[k]:
                parts.append(f"紧凑度 {p[k]:.3f} 低于 {self.o.sliver_thinness}")
            return f"要素 {self.refs.text(i)} 为碎片多边形: " + ", ".join(parts)

        self.feature_findings("sliver", "warning", rows, msg, area=a)

    def check_topology(self, overlaps: bool, gaps: bool) -> None:
        polys = self.polys
        sel = np.flatnonzero(~shapely.is_missing(polys))
        P = polys[sel]
        flagged = coverage_flags(P)
        if overlaps:
            self._overlaps(sel, P, flagged)
        if gaps:
            self._gaps(sel, P, flagged)

    def _overlaps(self, sel: np.ndarray, P: np.ndarray, flagged: np.ndarray) -> None:
        ov = find_overlaps(P, flagged)
        areas = self.area(ov.patches)
        tol = self.o.overlap_tolerance_m2
        sev = np.where(areas > tol, "error", "info").astype(object)
        # Largest first within a severity (record() keeps severity order stable).
        by_area = np.argsort(-areas, kind="stable")
        i_rows, j_rows = sel[ov.i][by_area], sel[ov.j][by_area]
        patches, areas, sev = ov.patches[by_area], areas[by_area], sev[by_area]

        def make(order: np.ndarray) -> list[Finding]:
            x, y = representative_xy(patches[order])
            out = []
            for k, xi, yi in zip(order, x, y, strict=True):
                i, j = int(i_rows[k]), int(j_rows[k])
                note = "" if sev[k] == "error" else f" (不超过容差 {fmt_area(tol)} ㎡)"
                out.append(
                    Finding(
                        "overlap",
                        str(sev[k]),
                        f"要素 {self.refs.text(i)} 与要素 {self.refs.text(j)} 重叠 "
                        f"{fmt_area(areas[k])} ㎡ {self.xy(_num(xi), _num(yi))}{note}",
                        feature=self.refs.key(i),
                        other=self.refs.key(j),
                        x=_num(xi),
                        y=_num(yi),
                        area_m2=float(areas[k]),
                        geometry=patches[k],
                    )
                )
            return out

        self.record("overlap", sev, np.arange(len(areas)), make)

    def _gaps(self, sel: np.ndarray, P: np.ndarray, flagged: np.ndarray) -> None:
        gaps = find_gaps(P, flagged)
        gaps = gaps[~shapely.is_empty(gaps)] if len(gaps) else gaps
        areas = self.area(gaps)
        tol = self.o.sliver_area_m2
        sev = np.where(areas >= tol, "error", "info").astype(object)
        by_area = np.argsort(-areas, kind="stable")
        gaps, areas, sev = gaps[by_area], areas[by_area], sev[by_area]

        def make(order: np.ndarray) -> list[Finding]:
            chosen = gaps[order]
            x, y = representative_xy(chosen)
            tree = shapely.STRtree(P)
            g_idx, p_idx = tree.query(chosen, predicate="intersects")
            out = []
            for n, (k, xi, yi) in enumerate(zip(order, x, y, strict=True)):
                neighbours = sel[p_idx[g_idx == n]]
                near = f", 相邻要素 {self.refs.texts(neighbours)}" if len(neighbours) else ""
                note = "" if sev[k] == "error" else f" (小于碎片阈值 {fmt_area(tol)} ㎡)"
                out.append(
                    Finding(
                        "gap",
                        str(sev[k]),
                        f"图层存在缝隙: 面积 {fmt_area(areas[k])} ㎡ "
                        f"{self.xy(_num(xi), _num(yi))}{near}{note}",
                        x=_num(xi),
                        y=_num(yi),
                        area_m2=float(areas[k]),
                        geometry=chosen[n],
                        detail={"neighbours": [self.refs.key(int(r)) for r in neighbours[:100]]},
                    )
                )
            return out

        self.record("gap", sev, np.arange(len(areas)), make)

    def report(self) -> QCReport:
        ordered = [c for c in CHECKS if c in self.checks_run]
        findings = tuple(f for c in ordered for f in self.findings[c])
        return QCReport(
            file=self.file,
            feature_count=self.n,
            checks_run=tuple(ordered),
            findings=findings,
            counts={c: self.counts[c] for c in ordered},
            severity_counts=dict(self.severity_counts),
        )


def _num(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def _polsby_popper(geoms: gpd.GeoSeries) -> np.ndarray:
    """Compactness ``4πA/P²`` with ``P`` measured in a conformal or local equal-area plane.

    The ratio does not depend on scale, so any projected CRS serves as is; lon/lat is
    first projected to a local azimuthal equal-area plane on the CGCS2000 ellipsoid.
    """
    crs = CRS.from_user_input(geoms.crs)
    if crs.is_geographic:
        geo = to_geographic(geoms)
        minx, miny, maxx, maxy = geo.total_bounds
        local = CRS.from_proj4(
            f"+proj=laea +lat_0={(miny + maxy) / 2:.6f} +lon_0={(minx + maxx) / 2:.6f} "
            "+ellps=GRS80 +units=m +no_defs"
        )
        planar = geo.to_crs(local)
        area = shapely.area(np.asarray(planar.values, dtype=object))
        perim = shapely.length(np.asarray(planar.values, dtype=object))
    else:
        area = shapely.area(np.asarray(geoms.values, dtype=object))
        perim = shapely.length(np.asarray(geoms.values, dtype=object))
    with np.errstate(divide="ignore", invalid="ignore"):
        pp = 4 * np.pi * area / perim**2
    return np.where(perim > 0, pp, 0.0)


def run_qc(
    gdf: gpd.GeoDataFrame, options: QCOptions | None = None, *, file: str | None = None
) -> QCReport:
    """Run the quality-control checks on one layer.

    Parameters
    ----------
    gdf : GeoDataFrame
        The layer, in any CRS with an ellipsoid (lon/lat EPSG:4490 or projected).
    options : QCOptions, optional
        What to check; defaults to :class:`QCOptions` ().
    file : str, optional
        Source file name, copied into the report.

    Returns
    -------
    QCReport
        Findings and true per-check counts. Area checks (sliver, overlap, gap) need a CRS;
        without one a ``missing_crs`` error is reported and they are not run.

    Raises
    ------
    InputError
        When ``gdf`` is not a GeoDataFrame.
    """
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputError(
            "质检对象必须是带几何列的图层 (GeoDataFrame)", key="qc_not_geodataframe", file=file
        )
    o = options or QCOptions()
    run = _Run(gdf, o, file)
    run.check_crs()
    run.check_presence()
    run.check_validity()
    run.check_dimensions()
    run.check_types()
    run.check_fields()
    if o.id_field:
        run.check_duplicate_ids()
    if o.code_field and o.valid_codes is not None:
        run.check_codes()
    if run.crs is not None:
        run.check_slivers()
        if o.overlaps_checked or o.tiling:
            run.check_topology(overlaps=o.overlaps_checked, gaps=o.tiling)
    return run.report()
