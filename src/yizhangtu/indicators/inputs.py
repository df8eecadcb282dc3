"""The pure input bundle of indicator computation, filled by the caller (store, CLI, tests).

:class:`IndicatorInputs` holds frames only; it never reads files. The lead's store adapter
tabulates survey areas by (unit, group), loads statistical tables and facility layers, and
passes them here.

Table conventions
-----------------
``areas``
    Columns ``unit_id``, ``group``, ``area_m2`` and optionally ``year`` (snapshot year). A
    group absent for a unit that has other rows counts as 0 m² in that unit; a group absent
    from the whole table makes indicators that need it not computable.
``unit_areas``
    Mapping or Series ``unit_id → m²``. If omitted, unit areas come from ``units`` on the
    CGCS2000 ellipsoid.
``tables``
    Name → DataFrame with columns ``unit_id``, ``year`` and value columns, one row per
    (unit_id, year), e.g. ``population`` with ``pop_total``, ``pop_urban``.
``facilities``
    Name → GeoDataFrame of points (or polygons, e.g. parks) with a CRS.
``units``
    GeoDataFrame of reporting units with ``unit_id`` (and ``name``) and a CRS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from yizhangtu.errors import CRSError, InputError
from yizhangtu.geo.area import ellipsoidal_area

__all__ = ["IndicatorInputs", "census_population_table"]


def _norm_ids(values: pd.Series) -> pd.Series:
    def one(v: object) -> object:
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return None if v is None else str(v)

    return values.map(one)


@dataclass(frozen=True, eq=False)
class IndicatorInputs:
    """Everything a catalogue's formulas may read, for one or more years.

    Parameters
    ----------
    areas : DataFrame, optional
        ``unit_id``, ``group``, ``area_m2`` [, ``year``].
    unit_areas : Mapping or Series, optional
        ``unit_id → m²``.
    tables : Mapping[str, DataFrame]
        Statistical tables keyed by name (``unit_id``, ``year`` + value columns).
    facilities : Mapping[str, GeoDataFrame]
        Facility layers keyed by name.
    units : GeoDataFrame, optional
        Reporting units with ``unit_id``.
    synthetic : bool
        True when any input is synthetic; carried into results and reports (合成数据).
    labels : Mapping[str, str]
        Optional Chinese names of tables, groups and facility layers, for messages.
    """

    areas: pd.DataFrame | None = None
    unit_areas: Mapping[str, float] | pd.Series | None = None
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    facilities: Mapping[str, gpd.GeoDataFrame] = field(default_factory=dict)
    units: gpd.GeoDataFrame | None = None
    synthetic: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.areas is not None:
            need = {"unit_id", "group", "area_m2"}
            missing = need - set(self.areas.columns)
            if missing:
                raise InputError(
                    "地类面积表缺少字段: " + ", ".join(sorted(missing)),
                    key="areas_columns",
                    field=",".join(sorted(missing)),
                    hint="地类面积表应有 unit_id, group, area_m2 (可选 year)",
                )
            areas = self.areas.copy()
            areas["unit_id"] = _norm_ids(areas["unit_id"])
            areas["area_m2"] = pd.to_numeric(areas["area_m2"], errors="raise").astype(float)
            if (areas["area_m2"] < 0).any():
                raise InputError("地类面积不能为负", key="negative_area", field="area_m2")
            object.__setattr__(self, "areas", areas)
        tables: dict[str, pd.DataFrame] = {}
        for name, df in self.tables.items():
            missing = {"unit_id", "year"} - set(df.columns)
            if missing:
                raise InputError(
                    f"统计表 {name} 缺少字段: " + ", ".join(sorted(missing)),
                    key="table_columns",
                    file=name,
                    field=",".join(sorted(missing)),
                    hint="统计表应按 unit_id 与 year 组织, 每个单元每年一行",
                )
            t = df.copy()
            t["unit_id"] = _norm_ids(t["unit_id"])
            t["year"] = pd.to_numeric(t["year"], errors="raise").astype(int)
            dup = t.duplicated(["unit_id", "year"], keep=False)
            if dup.any():
                first = t.loc[dup].iloc[0]
                raise InputError(
                    f"统计表 {name} 中单元 {first['unit_id']} {first['year']} 年有重复行",
                    key="duplicate_table_rows",
                    file=name,
                    feature=str(first["unit_id"]),
                )
            tables[name] = t
        object.__setattr__(self, "tables", tables)
        for name, gdf in self.facilities.items():
            if not isinstance(gdf, gpd.GeoDataFrame) or gdf.crs is None:
                raise CRSError(
                    f"设施图层 {name} 不是带坐标参考系的 GeoDataFrame",
                    key="crs_missing",
                    file=name,
                    hint="导入时指定坐标参考系",
                )
        if self.units is not None:
            if "unit_id" not in self.units.columns:
                raise InputError("单元图层缺少字段 unit_id", key="units_columns", field="unit_id")
            if self.units.crs is None:
                raise CRSError("单元图层没有坐标参考系", key="crs_missing", file="units")
            units = self.units.copy()
            units["unit_id"] = _norm_ids(units["unit_id"])
            if units["unit_id"].duplicated().any():
                raise InputError(
                    "单元图层中 unit_id 重复", key="duplicate_unit_id", field="unit_id"
                )
            object.__setattr__(self, "units", units)
        if self.unit_areas is not None:
            ua = pd.Series(self.unit_areas, dtype=float)
            ua.index = _norm_ids(pd.Series(ua.index)).to_numpy()
            object.__setattr__(self, "unit_areas", ua)

    def label(self, name: str) -> str:
        """Chinese label of a table, group or facility layer (the name itself if none)."""
        text = self.labels.get(name)
        return f"{text}({name})" if text else name

    def unit_ids(self, year: int | None = None) -> list[str]:
        """Default reporting units: units layer, else unit areas, else table rows of ``year``."""
        if self.units is not None:
            return list(self.units["unit_id"])
        if self.unit_areas is not None:
            return list(pd.Series(self.unit_areas).index)
        ids: dict[str, None] = {}
        for t in self.tables.values():
            rows = t if year is None else t[t["year"] == year]
            ids.update(dict.fromkeys(rows["unit_id"]))
        if self.areas is not None:
            ids.update(dict.fromkeys(self.areas["unit_id"]))
        return list(ids)

    def unit_area_series(self) -> pd.Series | None:
        """Return unit areas in m² (given, or ellipsoidal from ``units``)."""
        if self.unit_areas is not None:
            return pd.Series(self.unit_areas, dtype=float)
        if self.units is not None:
            return pd.Series(
                np.asarray(ellipsoidal_area(self.units.geometry), dtype=float),
                index=self.units["unit_id"].to_numpy(),
            )
        return None


def census_population_table(
    df: pd.DataFrame,
    *,
    year: int,
    code_column: str = "adcode",
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Turn a census extract into a ``population`` table keyed by ``unit_id`` and ``year``.

    Parameters
    ----------
    df : DataFrame
        Census rows, e.g. ``census2020_urbanization_*.csv`` (``adcode``, ``pop_total``,
        ``pop_urban``, ``pop_rural`` …).
    year : int
        Census year.
    code_column : str
        Column with the area code; becomes ``unit_id``.
    columns : Mapping, optional
        Renames applied before keying (source → target).

    Returns
    -------
    DataFrame
        One row per code (duplicates of the same code, e.g. a province repeated as its
        urban-district row, are dropped when identical).
    """
    out = df.rename(columns=dict(columns or {})).copy()
    if code_column not in out.columns:
        raise InputError(
            f"人口普查表缺少字段 {code_column}", key="census_columns", field=code_column
        )
    out["unit_id"] = _norm_ids(out[code_column])
    out["year"] = int(year)
    out = out.drop_duplicates()
    dup = out.duplicated(["unit_id", "year"], keep=False)
    if dup.any():
        raise InputError(
            "人口普查表中同一代码有多行不同数据: "
            + ", ".join(sorted(set(out.loc[dup, "unit_id"]))),
            key="duplicate_table_rows",
        )
    return out.reset_index(drop=True)
