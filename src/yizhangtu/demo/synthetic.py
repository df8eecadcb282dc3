"""Seeded synthetic 三调-like land survey (合成数据) generated inside real boundaries.

No real 三调 parcels are available offline, so the demo and the benchmarks use parcels that this
module generates inside real township/street boundaries. Every output row carries
``SYNTHETIC = True``; titles built from it must say 合成数据.

How a unit (街道/乡/地区/镇) is tiled:

1. The unit type (street, fringe, …) comes from its name by the profile's rules.
2. Smooth random fields (random Fourier features, seeded) split the unit into zones (城市 201,
   村庄 203, rural …) with the profile's area shares, calibrated per unit.
3. Seed points are drawn from a log-normal density field divided by each zone's mean parcel
   size, so parcel sizes have a heavy tail.
4. ``shapely.voronoi_polygons`` of the points (in local metres) tiles the unit's envelope; cells
   are clipped to the unit by intersection (cells strictly inside are kept as they are), and
   multipart leftovers are exploded into separate parcels. The parcels therefore tile the unit
   exactly: no overlaps, no gaps.
5. Land-use codes are drawn per zone by a Gumbel-max rule over smooth class fields, calibrated
   to the profile's area shares, so neighbours cluster.

All numbers (class mix, parcel sizes, change rates) live in ``demo/data/profile_*.yaml`` and
are invented for the demo.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml
from shapely import Polygon

from yizhangtu.errors import GeometryError, InputError, NotFoundError, PolicyError
from yizhangtu.geo.area import ellipsoidal_area, to_geographic

__all__ = [
    "CHANGE_LOG_COLUMNS",
    "SCENARIOS",
    "SURVEY_COLUMNS",
    "construction_mask",
    "default_shared_dir",
    "evolve_survey",
    "generate_benchmark",
    "generate_survey",
    "load_profile",
]

#: Output columns of a synthetic survey, in order (三调 DLTB field names).
SURVEY_COLUMNS: tuple[str, ...] = (
    "BSM",
    "TBBH",
    "DLBM",
    "DLMC",
    "CZCSXM",
    "ZLDWDM",
    "ZLDWMC",
    "TBMJ",
    "SJNF",
    "SYNTHETIC",
    "geometry",
)
#: Columns of the change log returned by :func:`evolve_survey`.
CHANGE_LOG_COLUMNS: tuple[str, ...] = (
    "BSM",
    "OLD_BSM",
    "ZLDWDM",
    "change_type",
    "old_DLBM",
    "new_DLBM",
    "old_CZCSXM",
    "new_CZCSXM",
    "area_m2",
    "scenario",
    "plot_ref",
    "SJNF",
    "SYNTHETIC",
)
#: Reduction-plot outcomes understood by :func:`evolve_survey`.
SCENARIOS: tuple[str, ...] = ("reduced", "partial", "not_reduced", "rebuild")

# Metres per degree used only for the local frame in which Voronoi cells and random fields live
# (shape of the synthetic cells); reported areas always come from ellipsoidal_area.
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_320.0
_POLYGON_TYPE_ID = 3
_AREA_CHUNK = 250_000


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Zone:
    name: str
    czcsxm: str
    share: float
    mean_m2: float
    codes: tuple[str, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class _UnitType:
    name: str
    density_len: float
    density_sigma: float
    zone_len: float
    class_len: float
    class_strength: float
    zone_conc: float
    class_conc: float
    zones: tuple[_Zone, ...]


@dataclass(frozen=True)
class _Profile:
    id: str
    n_features: int
    grid_fraction: float
    max_grid_cells: int
    min_grid_cells: int
    min_parcel_m2: float
    rules: tuple[dict[str, Any], ...]
    default_type: str
    types: dict[str, _UnitType]
    names: dict[str, str]
    construction: frozenset[str]
    czc_codes: frozenset[str]
    czcsxm_fixed: dict[str, str]
    evolve: dict[str, Any]

    def czcsxm(self, code: str, zone_czcsxm: str) -> str:
        fixed = self.czcsxm_fixed.get(code)
        if fixed is not None:
            return fixed
        return zone_czcsxm if code in self.czc_codes else ""


def _read_packaged_yaml(name: str) -> dict[str, Any]:
    res = resources.files("yizhangtu.demo").joinpath("data", f"{name}.yaml")
    if not res.is_file():
        raise NotFoundError(
            f"找不到合成数据参数文件: {name}.yaml",
            key="synthetic_profile_not_found",
            hint="可用的参数: " + ", ".join(_available_profiles()),
        )
    with res.open("r", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise PolicyError(f"合成数据参数文件格式错误: {name}.yaml", key="synthetic_profile_invalid")
    return data


def _available_profiles() -> list[str]:
    folder = resources.files("yizhangtu.demo").joinpath("data")
    return sorted(
        p.name[len("profile_") : -len(".yaml")]
        for p in folder.iterdir()
        if p.name.startswith("profile_") and p.name.endswith(".yaml")
    )


def load_profile(name: str = "chaoyang") -> dict[str, Any]:
    """Return a packaged synthetic-survey profile as a dict (a fresh copy).

    Parameters
    ----------
    name : str
        Profile name: ``demo/data/profile_<name>.yaml`` (``chaoyang``, ``beijing``).

    Returns
    -------
    dict
        The YAML content, with the code table it refers to under ``"code_table"``.
    """
    data = _read_packaged_yaml(f"profile_{name}")
    data["code_table"] = _read_packaged_yaml(str(data.get("codes", "sandiao_codes")))
    _parse_profile(name)  # validates
    return data


def _bad(name: str, msg: str) -> PolicyError:
    return PolicyError(
        f"合成数据参数 {name} 无效: {msg}",
        key="synthetic_profile_invalid",
        file=f"profile_{name}.yaml",
    )


@lru_cache(maxsize=16)
def _parse_profile(name: str) -> _Profile:
    raw = _read_packaged_yaml(f"profile_{name}")
    table = _read_packaged_yaml(str(raw.get("codes", "sandiao_codes")))
    names = {str(k): str(v) for k, v in table["names"].items()}
    construction = frozenset(str(c) for c in table["construction_codes"])
    czc_codes = frozenset(str(c) for c in table["czc_codes"])
    fixed = {str(k): str(v) for k, v in table.get("czcsxm_fixed", {}).items()}
    if raw.get("synthetic") is not True:
        raise _bad(name, "缺少 synthetic: true 标记")
    types: dict[str, _UnitType] = {}
    for tname, t in raw["types"].items():
        zones = []
        for z in t["zones"]:
            codes = tuple(str(c) for c in z["classes"])
            for c in codes:
                if c not in names:
                    raise _bad(name, f"类型 {tname} 的地类代码 {c} 不在三调工作分类中")
            weights = tuple(float(w) for w in z["classes"].values())
            if min(weights) < 0 or sum(weights) <= 0 or float(z["share"]) < 0:
                raise _bad(name, f"类型 {tname} 分区 {z['name']} 的比例无效")
            zones.append(
                _Zone(
                    name=str(z["name"]),
                    czcsxm=str(z.get("czcsxm") or ""),
                    share=float(z["share"]),
                    mean_m2=float(z["mean_parcel_m2"]),
                    codes=codes,
                    weights=weights,
                )
            )
        if not zones or sum(z.share for z in zones) <= 0:
            raise _bad(name, f"类型 {tname} 没有分区")
        types[str(tname)] = _UnitType(
            name=str(tname),
            density_len=float(t["density"]["length_m"]),
            density_sigma=float(t["density"]["sigma"]),
            zone_len=float(t["zone_field"]["length_m"]),
            class_len=float(t["class_field"]["length_m"]),
            class_strength=float(t["class_field"]["strength"]),
            zone_conc=float(t["zone_concentration"]),
            class_conc=float(t["class_concentration"]),
            zones=tuple(zones),
        )
    rules = tuple(dict(r) for r in raw["unit_types"]["rules"])
    default_type = str(raw["unit_types"]["default"])
    for r in (*rules, {"type": default_type}):
        if r["type"] not in types:
            raise _bad(name, f"单元类型 {r['type']} 未定义")
    evolve = raw.get("evolve", {})
    for code in _evolve_codes(evolve):
        if code not in names:
            raise _bad(name, f"变更参数中的地类代码 {code} 不在三调工作分类中")
    return _Profile(
        id=str(raw["id"]),
        n_features=int(raw.get("field_features", 24)),
        grid_fraction=float(raw.get("grid_fraction", 0.25)),
        max_grid_cells=int(raw.get("max_grid_cells", 250_000)),
        min_grid_cells=int(raw.get("min_grid_cells", 2_000)),
        min_parcel_m2=float(raw.get("min_parcel_m2", 0.0)),
        rules=rules,
        default_type=default_type,
        types=types,
        names=names,
        construction=construction,
        czc_codes=czc_codes,
        czcsxm_fixed=fixed,
        evolve=evolve,
    )


def _evolve_codes(ev: dict[str, Any]) -> Iterable[str]:
    bg = ev.get("background", {})
    red = bg.get("reduction", {})
    yield from (str(c) for c in red.get("targets", {}))
    for r in red.get("rules", []):
        yield from (str(c) for c in r.get("codes", []))
    nc = bg.get("new_construction", {})
    yield from (str(c) for c in nc.get("eligible", []))
    yield from (str(t["code"]) for t in nc.get("targets", []))
    for a, b in bg.get("correction", {}).get("pairs", {}).items():
        yield str(a)
        yield str(b)
    pl = ev.get("plots", {})
    yield from (str(c) for c in pl.get("reduction_targets", {}))
    yield from (str(t["code"]) for t in pl.get("rebuild_targets", []))


def construction_mask(dlbm: Sequence[str] | pd.Series, profile: str = "chaoyang") -> np.ndarray:
    """Return True where a 三调 code is construction land (建设用地, 三大类).

    Parameters
    ----------
    dlbm : sequence of str
        Land-use codes (DLBM).
    profile : str
        Profile whose code table defines the construction codes.
    """
    cons = _parse_profile(profile).construction
    return np.fromiter((str(c) in cons for c in dlbm), dtype=bool, count=len(dlbm))


def default_shared_dir() -> Path:
    """Locate the project's shared material directory.

    ``$YIZHANGTU_SHARED_DIR`` if set, else ``../shared`` relative to the working directory,
    else ``../shared`` relative to the repository that holds this package.
    """
    env = os.environ.get("YIZHANGTU_SHARED_DIR")
    if env:
        p = Path(env)
        if p.is_dir():
            return p
        raise NotFoundError(
            f"YIZHANGTU_SHARED_DIR 指向的目录不存在: {env}",
            key="shared_dir_not_found",
            hint="设置 YIZHANGTU_SHARED_DIR 为共享资料目录",
        )
    candidates = [
        Path.cwd() / ".." / "shared",
        Path(__file__).resolve().parents[3] / ".." / "shared",
    ]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    raise NotFoundError(
        "找不到共享资料目录 (../shared)",
        key="shared_dir_not_found",
        hint="设置环境变量 YIZHANGTU_SHARED_DIR",
    )


# --------------------------------------------------------------------------------------------
# Random fields and local frames
# --------------------------------------------------------------------------------------------


def _seq(seed: int, *keys: str | int) -> np.random.SeedSequence:
    ints = [int(seed) & 0xFFFFFFFF]
    for k in keys:
        ints.append(k & 0xFFFFFFFF if isinstance(k, int) else zlib.crc32(str(k).encode("utf-8")))
    return np.random.SeedSequence(ints)


class _Field:
    """Stationary Gaussian random field (unit variance) from random Fourier features."""

    def __init__(self, seed: int, key: str, length_m: float, k: int) -> None:
        rng = np.random.default_rng(_seq(seed, "field", key))
        self.w = rng.normal(size=(2, k)) / length_m
        self.phi = rng.uniform(0.0, 2.0 * np.pi, size=k)
        self.amp = math.sqrt(2.0 / k)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.empty(len(x))
        step = 200_000
        for i in range(0, len(x), step):
            xs, ys = x[i : i + step, None], y[i : i + step, None]
            out[i : i + step] = np.cos(xs * self.w[0] + ys * self.w[1] + self.phi).sum(axis=1)
        return out * self.amp


class _Fields:
    """Lazily built fields of one generation run (shared by all units: coherent across them)."""

    def __init__(self, seed: int, profile: _Profile) -> None:
        self.seed = seed
        self.k = profile.n_features
        self.cache: dict[tuple[str, ...], _Field] = {}

    def get(self, length: float, *key: str) -> _Field:
        f = self.cache.get(key)
        if f is None:
            f = _Field(self.seed, "|".join(key), length, self.k)
            self.cache[key] = f
        return f


@dataclass(frozen=True)
class _Frame:
    """Local metric frame: origin on a whole-degree node, equirectangular scale."""

    lon0: float
    lat0: float
    kx: float
    ky: float

    @classmethod
    def around(cls, lon: float, lat: float) -> _Frame:
        lon0, lat0 = float(round(lon)), float(round(lat))
        return cls(lon0, lat0, _M_PER_DEG_LON * math.cos(math.radians(lat0)), _M_PER_DEG_LAT)

    def fwd(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky

    def inv_coords(self, xy: np.ndarray) -> np.ndarray:
        return np.column_stack([xy[:, 0] / self.kx + self.lon0, xy[:, 1] / self.ky + self.lat0])


def _calibrated_argmax(
    scores: np.ndarray, weight: np.ndarray, target: np.ndarray, iters: int = 80
) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of ``scores + b`` with offsets ``b`` tuned so weighted shares approach ``target``."""
    c = scores.shape[1]
    pos = target > 0
    logt = np.full(c, -np.inf)
    logt[pos] = np.log(target[pos])
    b = logt.copy()
    total = float(weight.sum()) or 1.0
    best_choice = np.argmax(scores + b, axis=1)
    best_b, best_err = b.copy(), np.inf
    step, prev_err = 0.8, np.inf
    for _ in range(iters):
        choice = np.argmax(scores + b, axis=1)
        share = np.bincount(choice, weights=weight, minlength=c) / total
        err = float(np.abs(share - target).sum())
        if err < best_err:
            best_choice, best_b, best_err = choice, b.copy(), err
            if err < 0.01:
                break
        if err >= prev_err:
            step *= 0.7
        prev_err = err
        b[pos] += step * (logt[pos] - np.log(np.maximum(share[pos], 1e-3)))
    return best_choice, best_b


# --------------------------------------------------------------------------------------------
# Survey generation
# --------------------------------------------------------------------------------------------


@dataclass
class _UnitPlan:
    geom: Any
    code: str
    name: str
    utype: _UnitType
    zone_w: np.ndarray
    class_w: list[np.ndarray]
    area_m2: float
    rng: np.random.Generator
    n_points: int = 0


def _unit_type(profile: _Profile, row: dict[str, Any]) -> _UnitType:
    for rule in profile.rules:
        field = rule["field"]
        if field not in row or row[field] is None:
            continue
        val = str(row[field])
        if "equals" in rule and val in {str(v) for v in rule["equals"]}:
            return profile.types[rule["type"]]
        if "endswith" in rule and any(val.endswith(str(s)) for s in rule["endswith"]):
            return profile.types[rule["type"]]
    return profile.types[profile.default_type]


def _polygonal(geom: Any) -> Any:
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) == _POLYGON_TYPE_ID]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _sample_points(
    plan: _UnitPlan, profile: _Profile, fields: _Fields, frame: _Frame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seed points (frame metres) and the calibrated zone offsets of one unit."""
    ut, geom, rng = plan.utype, plan.geom, plan.rng
    minx, miny, maxx, maxy = geom.bounds
    x0, y0 = frame.fwd(np.array(minx), np.array(miny))
    x1, y1 = frame.fwd(np.array(maxx), np.array(maxy))
    w, h = float(x1 - x0), float(y1 - y0)
    cell = profile.grid_fraction * min(ut.zone_len, ut.density_len)
    # At least ~min_grid_cells cells inside the unit (zone shares are calibrated on them) …
    cell = min(cell, math.sqrt(plan.area_m2 / profile.min_grid_cells))
    # … and at most max_grid_cells over its envelope (bounded memory on large towns).
    cell = max(cell, math.sqrt(max(w * h, 1.0) / profile.max_grid_cells))
    nx, ny = max(1, math.ceil(w / cell)), max(1, math.ceil(h / cell))
    cx = float(x0) + (np.arange(nx) + 0.5) * (w / nx)
    cy = float(y0) + (np.arange(ny) + 0.5) * (h / ny)
    gx, gy = (a.ravel() for a in np.meshgrid(cx, cy))
    dx, dy = w / nx, h / ny
    inside = shapely.contains_xy(geom, gx / frame.kx + frame.lon0, gy / frame.ky + frame.lat0)
    if not inside.any():
        inside[:] = True

    zscores = np.column_stack(
        [fields.get(ut.zone_len, ut.name, "zone", z.name)(gx, gy) for z in ut.zones]
    )
    _, zb = _calibrated_argmax(zscores[inside], np.ones(int(inside.sum())), plan.zone_w)
    zcell = np.argmax(zscores + zb, axis=1)
    g = fields.get(ut.density_len, ut.name, "density")(gx, gy)
    mean_m2 = np.array([z.mean_m2 for z in ut.zones])
    dens = np.exp(ut.density_sigma * np.clip(g, -2.5, 2.5)) / mean_m2[zcell]
    p = dens / dens.sum()
    fill = float(p[inside].sum()) or 1.0

    n = plan.n_points
    got_x: list[np.ndarray] = []
    got_y: list[np.ndarray] = []
    have = 0
    for _ in range(200):
        m = math.ceil((n - have) / fill * 1.15) + 16
        counts = rng.multinomial(m, p)
        idx = np.repeat(np.arange(len(p)), counts)
        px = gx[idx] + (rng.random(len(idx)) - 0.5) * dx
        py = gy[idx] + (rng.random(len(idx)) - 0.5) * dy
        ok = shapely.contains_xy(geom, px / frame.kx + frame.lon0, py / frame.ky + frame.lat0)
        got_x.append(px[ok])
        got_y.append(py[ok])
        have += int(ok.sum())
        if have >= n:
            break
    px, py = np.concatenate(got_x), np.concatenate(got_y)
    # Coincident seeds would merge Voronoi cells; drop exact duplicates (first one kept).
    uniq = np.sort(np.unique(np.column_stack([px, py]), axis=0, return_index=True)[1])
    px, py = px[uniq], py[uniq]
    if len(px) > n:
        keep = np.sort(rng.choice(len(px), size=n, replace=False))
        px, py = px[keep], py[keep]
    zpt = np.argmax(
        np.column_stack(
            [fields.get(ut.zone_len, ut.name, "zone", z.name)(px, py) for z in ut.zones]
        )
        + zb,
        axis=1,
    )
    return px, py, zpt


def _tile_unit(
    plan: _UnitPlan, profile: _Profile, fields: _Fields
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parcels of one unit: (polygons lon/lat, DLBM codes, CZCSXM codes)."""
    geom, ut, rng = plan.geom, plan.utype, plan.rng
    c = geom.centroid
    frame = _Frame.around(c.x, c.y)
    px, py, zpt = _sample_points(plan, profile, fields, frame)
    n = len(px)
    if n <= 1:
        cells = np.array([geom], dtype=object)
        gen_idx = np.zeros(1, dtype=np.int64)
        if n == 0:
            rp = geom.representative_point()
            px, py = frame.fwd(np.array([rp.x]), np.array([rp.y]))
            zpt = np.zeros(1, dtype=np.int64)
    else:
        x0, y0 = frame.fwd(np.array(geom.bounds[0]), np.array(geom.bounds[1]))
        x1, y1 = frame.fwd(np.array(geom.bounds[2]), np.array(geom.bounds[3]))
        pad = 0.1 * max(float(x1 - x0), float(y1 - y0)) + 100.0
        extent = shapely.box(float(x0) - pad, float(y0) - pad, float(x1) + pad, float(y1) + pad)
        vor = shapely.voronoi_polygons(
            shapely.multipoints(np.column_stack([px, py])), extend_to=extent, ordered=True
        )
        cells = shapely.get_parts(vor)
        if len(cells) != n:
            raise GeometryError(
                "合成图斑生成失败: Voronoi 单元数与种子点数不一致",
                key="synthetic_voronoi_mismatch",
                feature=plan.code,
            )
        cells = shapely.transform(cells, frame.inv_coords)
        shapely.prepare(geom)
        inner = shapely.contains_properly(geom, cells)
        clipped = cells.copy()
        edge = ~inner
        clipped[edge] = shapely.intersection(cells[edge], geom)
        cells = clipped
        gen_idx = np.arange(len(cells))
    parts, pidx = shapely.get_parts(cells, return_index=True)
    keep = (shapely.get_type_id(parts) == _POLYGON_TYPE_ID) & ~shapely.is_empty(parts)
    keep &= shapely.area(parts) > 0
    parts, gen = parts[keep], gen_idx[pidx[keep]]
    parts, gen = _merge_slivers(parts, gen, profile.min_parcel_m2 / (frame.kx * frame.ky))

    # Land-use classes: per zone, Gumbel-max over smooth class fields, calibrated to area shares.
    area_w = shapely.area(parts) * frame.kx * frame.ky
    codes = np.empty(len(parts), dtype=object)
    czc = np.empty(len(parts), dtype=object)
    zone_of_part = zpt[gen]
    for zi, zone in enumerate(ut.zones):
        sel = np.flatnonzero(zone_of_part == zi)
        if len(sel) == 0:
            continue
        pts = np.unique(gen[sel])
        fx, fy = px[pts], py[pts]
        sc = np.column_stack(
            [
                ut.class_strength
                * fields.get(ut.class_len, ut.name, "class", zone.name, code)(fx, fy)
                for code in zone.codes
            ]
        )
        sc += rng.gumbel(size=sc.shape)
        row = np.searchsorted(pts, gen[sel])
        choice, _ = _calibrated_argmax(sc[row], area_w[sel], plan.class_w[zi])
        zcodes = np.array(zone.codes, dtype=object)[choice]
        codes[sel] = zcodes
        czc[sel] = [profile.czcsxm(cd, zone.czcsxm) for cd in zcodes]

    # Parcel numbering follows a Hilbert curve over the unit (neighbours get near numbers).
    if len(parts) > 1:
        order = np.argsort(
            gpd.GeoSeries(parts).hilbert_distance(total_bounds=geom.bounds).to_numpy(),
            kind="stable",
        )
        parts, codes, czc = parts[order], codes[order], czc[order]
    return parts, codes, czc


def _merge_slivers(
    parts: np.ndarray, gen: np.ndarray, min_area: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merge parts smaller than ``min_area`` into the neighbour sharing the longest edge.

    Clipping Voronoi cells to a unit leaves a few slivers along its boundary. A sliver with no
    edge-sharing neighbour (an islet of the unit itself) stays a parcel of its own.
    """
    areas = shapely.area(parts)
    small = np.flatnonzero(areas < min_area)
    if len(small) == 0 or len(parts) < 2:
        return parts, gen
    parts = parts.copy()
    alive = np.ones(len(parts), dtype=bool)
    tree = shapely.STRtree(parts)
    for i in small[np.argsort(areas[small], kind="stable")]:
        nbs = [int(j) for j in tree.query(parts[i], predicate="intersects") if j != i and alive[j]]
        if not nbs:
            continue
        shared = shapely.length(
            shapely.intersection(shapely.boundary(parts[i]), shapely.boundary(parts[nbs]))
        )
        k = int(np.argmax(shared))
        if shared[k] <= 0:
            continue
        merged = shapely.union(parts[nbs[k]], parts[i])
        if shapely.get_type_id(merged) != _POLYGON_TYPE_ID:
            continue
        parts[nbs[k]] = merged
        alive[i] = False
    return parts[alive], gen[alive]


def _plans(
    units: gpd.GeoDataFrame, unit_field: str, seed: int, profile: _Profile
) -> list[_UnitPlan]:
    if unit_field not in units.columns:
        raise InputError(
            f"单元图层没有字段 {unit_field}",
            key="unit_field_missing",
            field=unit_field,
            hint="可用字段: " + ", ".join(str(c) for c in units.columns if c != "geometry"),
        )
    geo = to_geographic(units.geometry)
    areas = ellipsoidal_area(geo)
    names = units["name"] if "name" in units.columns else None
    plans: list[_UnitPlan] = []
    seen: dict[str, int] = {}
    records = units.drop(columns=units.geometry.name).to_dict("records")
    for i, (g, rec) in enumerate(zip(geo.values, records, strict=True)):
        code = str(rec[unit_field])
        if g is None or g.is_empty:
            raise InputError(
                f"单元 {code} 没有几何", key="unit_geometry_empty", feature=i, field=unit_field
            )
        geom = _polygonal(g)
        if geom is None:
            raise InputError(
                f"单元 {code} 不是面", key="unit_geometry_not_polygon", feature=i, field=unit_field
            )
        dup = seen.get(code, 0)
        seen[code] = dup + 1
        rng = np.random.default_rng(_seq(seed, "unit", code, dup))
        ut = _unit_type(profile, rec)
        share = np.array([z.share for z in ut.zones])
        share = share / share.sum()
        zone_w = rng.dirichlet(np.maximum(share * ut.zone_conc, 1e-3)) * (share > 0)
        zone_w = zone_w / zone_w.sum()
        class_w = []
        for z in ut.zones:
            cw = np.array(z.weights) / sum(z.weights)
            v = rng.dirichlet(np.maximum(cw * ut.class_conc, 1e-3)) * (cw > 0)
            class_w.append(v / v.sum())
        name = "" if names is None or pd.isna(names.iloc[i]) else str(names.iloc[i])
        plans.append(_UnitPlan(geom, code, name, ut, zone_w, class_w, float(areas[i]), rng))
    return plans


def generate_survey(
    units: gpd.GeoDataFrame,
    *,
    unit_field: str,
    seed: int = 2020,
    mean_parcel_m2: float | None = None,
    n_parcels: int | None = None,
    profile: str = "chaoyang",
    year: int = 2020,
) -> gpd.GeoDataFrame:
    """Generate a synthetic 三调-like survey (合成数据) that tiles each unit exactly.

    Parameters
    ----------
    units : GeoDataFrame
        Real boundary polygons (街道/乡镇), any CRS with an ellipsoid. A ``name`` column, if
        present, gives ZLDWMC and the unit type (街道 → street, 乡/地区 → fringe, …).
    unit_field : str
        Column holding each unit's code; copied to ZLDWDM.
    seed : int
        Random seed; the output is a deterministic function of the inputs and the seed.
    mean_parcel_m2 : float, optional
        Rescale parcel density so the overall mean parcel is about this size.
    n_parcels : int, optional
        Rescale parcel density to about this many parcels (exploded clip leftovers add a few).
    profile : str
        Packaged profile (``chaoyang``, ``beijing``) holding class mix and parcel sizes.
    year : int
        Survey year, written to SJNF.

    Returns
    -------
    GeoDataFrame
        Columns :data:`SURVEY_COLUMNS`, EPSG:4490, one Polygon per row, ``SYNTHETIC`` True.
    """
    if mean_parcel_m2 is not None and n_parcels is not None:
        raise InputError(
            "mean_parcel_m2 与 n_parcels 只能指定一个",
            key="synthetic_density_conflict",
            hint="二选一",
        )
    if (mean_parcel_m2 is not None and mean_parcel_m2 <= 0) or (
        n_parcels is not None and n_parcels <= 0
    ):
        raise InputError("图斑数量或平均面积必须为正数", key="synthetic_density_invalid")
    prof = _parse_profile(profile)
    plans = _plans(units, unit_field, seed, prof)
    raw = np.array(
        [
            p.area_m2 * sum(w / z.mean_m2 for w, z in zip(p.zone_w, p.utype.zones, strict=True))
            for p in plans
        ]
    )
    scale = 1.0
    if n_parcels is not None and raw.sum() > 0:
        scale = n_parcels / raw.sum()
    elif mean_parcel_m2 is not None and raw.sum() > 0:
        scale = sum(p.area_m2 for p in plans) / mean_parcel_m2 / raw.sum()
    for p, r in zip(plans, raw, strict=True):
        p.n_points = max(1, round(r * scale))

    fields = _Fields(seed, prof)
    frames: list[pd.DataFrame] = []
    geoms: list[np.ndarray] = []
    for plan in plans:
        parts, codes, czc = _tile_unit(plan, prof, fields)
        frames.append(
            pd.DataFrame(
                {
                    "TBBH": np.arange(1, len(parts) + 1).astype(str),
                    "DLBM": codes.astype(str),
                    "CZCSXM": czc.astype(str),
                    "ZLDWDM": plan.code,
                    "ZLDWMC": plan.name,
                }
            )
        )
        geoms.append(parts)
    return _assemble(frames, geoms, prof, year)


def _assemble(
    frames: list[pd.DataFrame], geoms: list[np.ndarray], prof: _Profile, year: int
) -> gpd.GeoDataFrame:
    df = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: [] for c in ("TBBH", "DLBM", "CZCSXM", "ZLDWDM", "ZLDWMC")})
    )
    geom = np.concatenate(geoms) if geoms else np.array([], dtype=object)
    # Ellipsoidal areas in chunks: one projection set-up per chunk, bounded extra memory.
    tbmj = np.zeros(len(geom))
    for i in range(0, len(geom), _AREA_CHUNK):
        chunk = gpd.GeoSeries(geom[i : i + _AREA_CHUNK], crs=4490)
        tbmj[i : i + _AREA_CHUNK] = np.round(ellipsoidal_area(chunk), 2)
    df["TBMJ"] = tbmj
    df.insert(0, "BSM", np.arange(1, len(df) + 1, dtype=np.int64))
    df.insert(3, "DLMC", df["DLBM"].map(prof.names).astype(str))
    df["SJNF"] = np.int64(year)
    df["SYNTHETIC"] = True
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geom, crs=4490).values, crs=4490)[
        list(SURVEY_COLUMNS)
    ]


def generate_benchmark(
    n_parcels: int,
    *,
    seed: int = 1,
    units: gpd.GeoDataFrame | None = None,
    unit_field: str = "code",
    profile: str = "beijing",
    shared_dir: str | Path | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Synthetic survey of about ``n_parcels`` parcels for benchmarks (合成数据).

    Parameters
    ----------
    n_parcels : int
        Target parcel count (10k … 5M); exploded clip leftovers add a fraction of a percent.
    seed : int
        Random seed.
    units : GeoDataFrame, optional
        Boundaries to fill. Default: Beijing's 343 streets/townships,
        ``<shared>/data/boundaries/beijing_subdistricts_wgs84.geojson``.
    unit_field : str
        Unit code column.
    profile : str
        Packaged profile.
    shared_dir : path, optional
        Shared material directory; default :func:`default_shared_dir`.

    Returns
    -------
    (GeoDataFrame, GeoDataFrame)
        The survey and the units it tiles (EPSG:4490).
    """
    if units is None:
        base = Path(shared_dir) if shared_dir is not None else default_shared_dir()
        path = base / "data" / "boundaries" / "beijing_subdistricts_wgs84.geojson"
        if not path.is_file():
            raise NotFoundError(
                f"找不到北京街道乡镇边界: {path}",
                key="benchmark_units_not_found",
                file=str(path),
                hint="设置 YIZHANGTU_SHARED_DIR 或传入 units",
            )
        units = gpd.read_file(path)
    units = units.set_geometry(to_geographic(units.geometry))
    survey = generate_survey(
        units, unit_field=unit_field, seed=seed, n_parcels=n_parcels, profile=profile
    )
    return survey, units


# --------------------------------------------------------------------------------------------
# Yearly change
# --------------------------------------------------------------------------------------------


def _approx_m2_factor(lat: float) -> float:
    return _M_PER_DEG_LON * math.cos(math.radians(lat)) * _M_PER_DEG_LAT


def _pick(rng: np.random.Generator, weighted: dict[str, float] | list[dict[str, Any]]) -> Any:
    if isinstance(weighted, dict):
        keys = list(weighted)
        w = np.array([float(weighted[k]) for k in keys])
        return keys[int(rng.choice(len(keys), p=w / w.sum()))]
    w = np.array([float(t["weight"]) for t in weighted])
    return weighted[int(rng.choice(len(weighted), p=w / w.sum()))]


def _halfplane_zone(plot: Any, pieces: np.ndarray, share: float, rng: np.random.Generator) -> Any:
    """Part of ``plot`` on one side of a random line, holding ``share`` of the pieces' area."""
    theta = rng.uniform(0.0, np.pi)
    e1 = np.array([math.cos(theta), math.sin(theta)])
    e2 = np.array([-e1[1], e1[0]])
    xy = shapely.get_coordinates(plot)
    p1, p2 = xy @ e1, xy @ e2
    span = float(max(p1.max() - p1.min(), p2.max() - p2.min())) + 1e-6
    lo_q, hi_q = float(p2.min()) - span, float(p2.max()) + span
    start = float(p1.min()) - span
    total = float(shapely.area(pieces).sum())

    def half(t: float) -> Polygon:
        corners = [(start, lo_q), (t, lo_q), (t, hi_q), (start, hi_q)]
        return Polygon([tuple(a * e1 + b * e2) for a, b in corners])

    lo, hi = float(p1.min()), float(p1.max())
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        got = float(shapely.area(shapely.intersection(pieces, half(mid))).sum())
        if got < share * total:
            lo = mid
        else:
            hi = mid
    return shapely.intersection(plot, half(0.5 * (lo + hi)))


def evolve_survey(
    survey: gpd.GeoDataFrame,
    *,
    seed: int,
    year: int,
    profile: str = "chaoyang",
    plots: gpd.GeoDataFrame | None = None,
    protect: gpd.GeoSeries | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Next year's synthetic survey (年度变更, 合成数据) and its change log.

    Parameters
    ----------
    survey : GeoDataFrame
        A survey with :data:`SURVEY_COLUMNS` (e.g. from :func:`generate_survey`).
    seed : int
        Random seed for this year's changes.
    year : int
        The new survey year (SJNF).
    profile : str
        Packaged profile whose ``evolve`` section holds the (synthetic) change rates.
    plots : GeoDataFrame, optional
        Reduction plots with a ``scenario`` column in :data:`SCENARIOS`. Under each plot the
        profile's share of the construction area becomes non-construction (reduced ≈ 98 %,
        partial ≈ 50 %, not_reduced 0), or of the non-construction area becomes construction
        (rebuild). Parcels are split along the plot (and, for a partial share, a straight cut)
        so the survey still tiles each unit exactly.
    protect : GeoSeries, optional
        Areas whose parcels get no background change, e.g. earlier years' reduction plots,
        which would otherwise be "rebuilt" at random; a rebuild is then only what ``plots`` asks.

    Returns
    -------
    (GeoDataFrame, DataFrame)
        The new survey (unchanged parcels keep BSM and TBBH; changed or split parcels get new
        ones) and the change log with :data:`CHANGE_LOG_COLUMNS`; ``OLD_BSM`` is the parcel of
        the input survey that the new parcel comes from.
    """
    missing = [c for c in SURVEY_COLUMNS if c != "geometry" and c not in survey.columns]
    if missing:
        raise InputError(
            "图斑图层缺少字段: " + ", ".join(missing),
            key="survey_fields_missing",
            field=missing[0],
        )
    prof = _parse_profile(profile)
    ev = prof.evolve
    if not ev:
        raise PolicyError(f"参数 {profile} 没有 evolve 部分", key="synthetic_profile_invalid")
    cons = prof.construction
    rng = np.random.default_rng(_seq(seed, "evolve", int(year)))

    base_geoms = np.asarray(to_geographic(survey.geometry).values, dtype=object)
    n0 = len(survey)
    # Piece store: originals first, new pieces appended. root = original position.
    g_list: list[Any] = list(base_geoms)
    code_l: list[str] = [str(c) for c in survey["DLBM"]]
    czc_l: list[str] = ["" if pd.isna(c) else str(c) for c in survey["CZCSXM"]]
    alive: list[bool] = [True] * n0
    root: list[int] = list(range(n0))
    ctype: list[str] = [""] * n0
    scen: list[str] = [""] * n0
    pref: list[str] = [""] * n0
    children: dict[int, list[int]] = {}

    def add_piece(parent: int, geom: Any, code: str, czc: str, kind: str, sc: str, pr: str) -> None:
        children.setdefault(parent, []).append(len(g_list))
        g_list.append(geom)
        code_l.append(code)
        czc_l.append(czc)
        alive.append(True)
        root.append(root[parent])
        ctype.append(kind)
        scen.append(sc)
        pref.append(pr)

    def live_descendants(i: int) -> list[int]:
        if alive[i]:
            return [i]
        out: list[int] = []
        for ch in children.get(i, []):
            out.extend(live_descendants(ch))
        return out

    touched = np.zeros(n0, dtype=bool)
    if plots is not None and len(plots):
        if "scenario" not in plots.columns:
            raise InputError(
                "减量地块缺少 scenario 字段", key="plots_scenario_missing", field="scenario"
            )
        bad = sorted({str(s) for s in plots["scenario"]} - set(SCENARIOS))
        if bad:
            raise InputError(
                "未知的 scenario: " + ", ".join(bad),
                key="plots_scenario_unknown",
                field="scenario",
                hint="可选: " + ", ".join(SCENARIOS),
            )
        pl_cfg = ev["plots"]
        shares = {k: float(v) for k, v in pl_cfg["converted_share"].items()}
        min_piece = float(pl_cfg.get("min_piece_m2", 1.0))
        plot_geoms = np.asarray(to_geographic(plots.geometry).values, dtype=object)
        tree = shapely.STRtree(base_geoms)
        for j, (pg, sc, ref) in enumerate(
            zip(plot_geoms, plots["scenario"], plots.index, strict=True)
        ):
            if pg is None or pg.is_empty:
                continue
            pg = _polygonal(pg)
            if pg is None:
                continue
            hits = tree.query(pg, predicate="intersects")
            touched[hits] = True
            share = shares[str(sc)]
            if share <= 0:
                continue
            rebuild = str(sc) == "rebuild"
            cand = [k for h in hits for k in live_descendants(int(h))]
            cand = [k for k in cand if (code_l[k] in cons) != rebuild]
            if not cand:
                continue
            prng = np.random.default_rng(_seq(seed, "plot", int(year), j))
            f_m2 = _approx_m2_factor(pg.centroid.y)
            cgeoms = np.array([g_list[k] for k in cand], dtype=object)
            under = shapely.intersection(cgeoms, pg)
            zone = pg if share >= 1.0 else _halfplane_zone(pg, under, share, prng)
            if rebuild:
                t = _pick(prng, pl_cfg["rebuild_targets"])
                new_code, new_czc, kind = str(t["code"]), str(t["czcsxm"]), "rebuild"
            else:
                new_code = str(_pick(prng, pl_cfg["reduction_targets"]))
                new_czc, kind = prof.czcsxm(new_code, ""), "reduction"
            inside = shapely.intersection(cgeoms, zone)
            outside = shapely.difference(cgeoms, zone)
            a_in = shapely.area(inside) * f_m2
            a_out = shapely.area(outside) * f_m2
            for k, gin, gout, ai, ao in zip(cand, inside, outside, a_in, a_out, strict=True):
                if ai < min_piece:
                    continue
                alive[k] = False
                if ao < min_piece:
                    add_piece(k, g_list[k], new_code, new_czc, kind, str(sc), str(ref))
                    continue
                pieces = [(p, new_code, new_czc, kind) for p in _polygon_parts(gin)]
                pieces += [(p, code_l[k], czc_l[k], "split") for p in _polygon_parts(gout)]
                for part, pc, pz, pk in _absorb_slivers(pieces, min_piece / f_m2):
                    add_piece(k, part, pc, pz, pk, str(sc), str(ref))

    if protect is not None and len(protect):
        keep = np.asarray(to_geographic(protect).values, dtype=object)
        keep = keep[~(shapely.is_missing(keep) | shapely.is_empty(keep))]
        if len(keep):
            touched[
                np.unique(shapely.STRtree(base_geoms).query(keep, predicate="intersects")[1])
            ] = True

    # Background change on parcels no plot touches (rates are synthetic, from the profile).
    bg = ev.get("background", {})
    red = bg.get("reduction", {})
    nc = bg.get("new_construction", {})
    corr = bg.get("correction", {})
    codes = np.array(code_l[:n0], dtype=object)
    czcs = np.array(czc_l[:n0], dtype=object)
    free = ~touched & np.array(alive[:n0], dtype=bool)
    is_cons = np.isin(codes, list(cons))
    rate_red = _reduction_rates(red, codes, czcs) * is_cons
    eligible = ~is_cons & np.isin(codes, [str(c) for c in nc.get("eligible", [])])
    r_new, r_corr = float(nc.get("rate", 0.0)), float(corr.get("rate", 0.0))
    pairs = {str(a): str(b) for a, b in corr.get("pairs", {}).items()}
    u = rng.random(n0)
    # One uniform draw per parcel: [0, rate) changes class, the next r_corr corrects the code.
    lo = np.where(is_cons, rate_red, np.where(eligible, r_new, 0.0))
    do_red = free & (u < rate_red)
    do_new = free & eligible & (u < r_new)
    do_corr = free & np.isin(codes, list(pairs)) & (u >= lo) & (u < lo + r_corr)
    for i in np.flatnonzero(do_red | do_new | do_corr).tolist():
        alive[i] = False
        if do_red[i]:
            nc_code = str(_pick(rng, red["targets"]))
            add_piece(i, g_list[i], nc_code, prof.czcsxm(nc_code, ""), "reduction", "", "")
        elif do_new[i]:
            t = _pick(rng, nc["targets"])
            add_piece(i, g_list[i], str(t["code"]), str(t["czcsxm"]), "new_construction", "", "")
        else:
            add_piece(i, g_list[i], pairs[codes[i]], czcs[i], "correction", "", "")

    return _assemble_evolved(
        survey, prof, year, g_list, code_l, czc_l, alive, root, ctype, scen, pref, n0
    )


def _reduction_rates(red: dict[str, Any], codes: np.ndarray, czcs: np.ndarray) -> np.ndarray:
    """Yearly reduction probability per parcel: first matching rule, else the default rate."""
    rate = np.full(len(codes), float(red.get("default_rate", 0.0)))
    done = np.zeros(len(codes), dtype=bool)
    for r in red.get("rules", []):
        m = ~done
        if "czcsxm" in r:
            m &= czcs == str(r["czcsxm"])
        if "codes" in r:
            m &= np.isin(codes, [str(c) for c in r["codes"]])
        rate[m] = float(r["rate"])
        done |= m
    return rate


def _absorb_slivers(pieces: list[tuple[Any, ...]], min_area: float) -> list[tuple[Any, ...]]:
    """Merge pieces under ``min_area`` (degree² units) into the neighbour they share most edge with.

    A plot edge that runs along a parcel edge leaves zero-width slivers in the split; merged,
    the parcel's pieces still tile it exactly and no empty parcel reaches the survey.
    """
    area = [shapely.area(p[0]) for p in pieces]
    keep = [i for i, a in enumerate(area) if a >= min_area]
    if not keep or len(keep) == len(pieces):
        return pieces
    out = {i: list(pieces[i]) for i in keep}
    for i in (i for i in range(len(pieces)) if i not in out):
        g = pieces[i][0]
        shared = [
            shapely.length(shapely.intersection(g.boundary, out[j][0].boundary)) for j in keep
        ]
        j = keep[int(np.argmax(shared))]
        merged = shapely.union(out[j][0], g)
        if shapely.get_type_id(merged) == _POLYGON_TYPE_ID:
            out[j][0] = merged
    return [tuple(out[i]) for i in keep]


def _polygon_parts(geom: Any) -> list[Any]:
    return [
        p
        for p in shapely.get_parts(geom)
        if shapely.get_type_id(p) == _POLYGON_TYPE_ID and not p.is_empty and p.area > 0
    ]


def _assemble_evolved(
    survey: gpd.GeoDataFrame,
    prof: _Profile,
    year: int,
    g_list: list[Any],
    code_l: list[str],
    czc_l: list[str],
    alive: list[bool],
    root: list[int],
    ctype: list[str],
    scen: list[str],
    pref: list[str],
    n0: int,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    alive_a = np.array(alive, dtype=bool)
    ids = np.flatnonzero(alive_a)
    roots = np.array(root, dtype=np.int64)[ids]
    # Keep the input order; pieces of a changed parcel sit where the parcel was.
    order = np.lexsort((ids, roots))
    ids, roots = ids[order], roots[order]
    new = ids >= n0

    base = survey.drop(columns=survey.geometry.name).reset_index(drop=True)
    out = base.iloc[roots].reset_index(drop=True)
    out["DLBM"] = [code_l[i] for i in ids]
    out["CZCSXM"] = [czc_l[i] for i in ids]
    new_dlmc = out["DLBM"].map(prof.names)
    out["DLMC"] = out["DLMC"].astype(str).where(~new, new_dlmc.fillna("").astype(str))
    bsm_old = base["BSM"].to_numpy(dtype=np.int64)
    bsm = bsm_old[roots].copy()
    next_bsm = int(bsm_old.max()) + 1 if len(bsm_old) else 1
    creation = np.argsort(ids[new], kind="stable")  # new BSMs in creation order
    new_pos = np.flatnonzero(new)[creation]
    bsm[new_pos] = np.arange(next_bsm, next_bsm + len(new_pos), dtype=np.int64)
    out["BSM"] = bsm
    tbbh = out["TBBH"].astype(str).to_numpy(dtype=object)
    num = pd.to_numeric(base["TBBH"], errors="coerce").fillna(0)
    next_tbbh = num.groupby(base["ZLDWDM"].astype(str)).max().astype(np.int64).to_dict()
    for pos in new_pos:
        z = str(out.at[pos, "ZLDWDM"])
        next_tbbh[z] = next_tbbh.get(z, 0) + 1
        tbbh[pos] = str(next_tbbh[z])
    out["TBBH"] = tbbh
    geoms = np.array([g_list[i] for i in ids], dtype=object)
    tbmj = out["TBMJ"].to_numpy(dtype=float).copy()
    if len(new_pos):
        tbmj[new_pos] = np.round(ellipsoidal_area(gpd.GeoSeries(geoms[new_pos], crs=4490)), 2)
    out["TBMJ"] = tbmj
    out["SJNF"] = np.int64(year)
    out["SYNTHETIC"] = True
    result = gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geoms, crs=4490).values, crs=4490)
    result = result[list(SURVEY_COLUMNS) + [c for c in out.columns if c not in SURVEY_COLUMNS]]

    log_rows = new_pos[np.argsort(bsm[new_pos], kind="stable")]
    pid = ids[log_rows]
    rt = roots[log_rows]
    log = pd.DataFrame(
        {
            "BSM": bsm[log_rows],
            "OLD_BSM": bsm_old[rt],
            "ZLDWDM": base["ZLDWDM"].astype(str).to_numpy()[rt],
            "change_type": [ctype[i] for i in pid],
            "old_DLBM": base["DLBM"].astype(str).to_numpy()[rt],
            "new_DLBM": [code_l[i] for i in pid],
            "old_CZCSXM": base["CZCSXM"].fillna("").astype(str).to_numpy()[rt],
            "new_CZCSXM": [czc_l[i] for i in pid],
            "area_m2": tbmj[log_rows],
            "scenario": [scen[i] for i in pid],
            "plot_ref": [pref[i] for i in pid],
            "SJNF": np.int64(year),
            "SYNTHETIC": True,
        },
        columns=list(CHANGE_LOG_COLUMNS),
    )
    return result, log
