"""Run the seed-figure checks of ``seed_figures.yaml`` through the real catalogue formulas.

Each figure is recomputed with :func:`~yizhangtu.indicators.compute.compute` and
:func:`~yizhangtu.indicators.evaluate.evaluate` from its stated inputs (inline rows in the units
of the source text, or raw census frames the caller loads), then compared with the claim the
text makes (:func:`~yizhangtu.indicators.consistency.check_claim`) and with the expected status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import pandas as pd
import yaml

from yizhangtu.errors import InputError, ValidationError
from yizhangtu.indicators.catalogue import load_catalogue
from yizhangtu.indicators.compute import compute
from yizhangtu.indicators.consistency import Claim, ClaimCheck, check_claim
from yizhangtu.indicators.evaluate import evaluate
from yizhangtu.indicators.inputs import IndicatorInputs, census_population_table
from yizhangtu.indicators.model import Catalogue, Indicator
from yizhangtu.indicators.units import parse_unit

__all__ = [
    "SeedFigure",
    "SeedFigureResult",
    "figure_tables",
    "load_seed_figures",
    "run_seed_figure",
    "seed_figure_files",
]


@dataclass(frozen=True)
class SeedFigure:
    """One figure of ``seed_figures.yaml``."""

    id: str
    title: str
    catalogue: str
    indicator: str
    unit_id: str
    year: int
    tables: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    claim: Claim | None = None
    expect_consistent: bool | None = None
    expected_status: str | None = None
    why: str | None = None
    unverifiable: str | None = None


@dataclass(frozen=True)
class SeedFigureResult:
    """Outcome of one seed figure: computed value, status, claim check."""

    figure: SeedFigure
    value: float | None
    value_unit: str
    status: str | None
    status_reason: str | None
    target: float | None
    claim_check: ClaimCheck | None

    @property
    def status_as_expected(self) -> bool | None:
        """Whether the status is the expected one (None if no expectation)."""
        if self.figure.expected_status is None:
            return None
        return self.status == self.figure.expected_status

    @property
    def claim_as_expected(self) -> bool | None:
        """Whether the claim check came out as expected (None if no claim)."""
        if self.claim_check is None or self.figure.expect_consistent is None:
            return None
        return self.claim_check.consistent == self.figure.expect_consistent


@cache
def _raw() -> dict[str, Any]:
    text = resources.files("yizhangtu.indicators").joinpath("seed_figures.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def seed_figure_files() -> dict[str, dict[str, Any]]:
    """Return the data files the figures read (key → path hint, source, loader, year)."""
    return dict(_raw().get("files", {}))


def load_seed_figures() -> list[SeedFigure]:
    """All figures of the packaged ``seed_figures.yaml``."""
    out = []
    for d in _raw()["figures"]:
        c = d.get("claimed")
        claim = None
        if c is not None:
            claim = Claim(
                op=c["op"],
                value=str(c["value"]),
                unit=c.get("unit", ""),
                text=c.get("text"),
                clause=c.get("clause"),
                decimals=c.get("decimals"),
            )
        out.append(
            SeedFigure(
                id=d["id"],
                title=d["title"],
                catalogue=d["catalogue"],
                indicator=d["indicator"],
                unit_id=str(d["unit_id"]),
                year=int(d["year"]),
                tables=d.get("tables", {}),
                files=d.get("files", {}),
                claim=claim,
                expect_consistent=d.get("expect_consistent"),
                expected_status=d.get("expected_status"),
                why=d.get("why"),
                unverifiable=d.get("unverifiable"),
            )
        )
    return out


def _column_unit(ind: Indicator, table: str, column: str) -> str | None:
    for op in ind.formula.operands():
        if op.kind == "table" and op.table == table and op.column == column:
            return op.unit
    return None


def _inline_table(ind: Indicator, name: str, spec: Mapping[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(spec["rows"])
    for col, stated in dict(spec.get("units", {})).items():
        declared = _column_unit(ind, name, col)
        if declared is None:
            raise ValidationError(
                f"种子数字表 {name}.{col} 不是指标 {ind.id} 的输入",
                key="seed_figure_column",
                field=col,
            )
        s, d = parse_unit(stated), parse_unit(declared)
        if not s.same_dimension(d):
            raise ValidationError(
                f"种子数字表 {name}.{col} 的单位 {stated} 与目录单位 {declared} 量纲不同",
                key="unit_mismatch",
                field=col,
            )
        df[col] = df[col].astype(float) * s.factor / d.factor
    return df


def figure_tables(
    figure: SeedFigure, *, catalogue: Catalogue | None = None
) -> dict[str, pd.DataFrame]:
    """Inline tables of a figure, converted to the units its catalogue declares.

    E.g. ``pop_total: 344.9`` stated in 万人 becomes 3 449 000 persons. Figures that only read
    files (census) give an empty mapping.
    """
    cat = catalogue or load_catalogue(figure.catalogue)
    ind = cat.get(figure.indicator)
    return {name: _inline_table(ind, name, spec) for name, spec in figure.tables.items()}


def run_seed_figure(
    figure: SeedFigure,
    files: Mapping[str, pd.DataFrame] | None = None,
    *,
    catalogue: Catalogue | None = None,
) -> SeedFigureResult:
    """Recompute one seed figure.

    Parameters
    ----------
    figure : SeedFigure
        From :func:`load_seed_figures`.
    files : Mapping[str, DataFrame], optional
        Raw frames for the figure's ``files`` keys (e.g. ``census2020`` → the CSV read by
        ``pandas.read_csv(..., dtype={'adcode': str})``).
    catalogue : Catalogue, optional
        Use this catalogue instead of the packaged one named by the figure.
    """
    cat = catalogue or load_catalogue(figure.catalogue)
    ind = cat.get(figure.indicator)
    tables: dict[str, pd.DataFrame] = {}
    meta = seed_figure_files()
    for table_name, key in figure.files.items():
        if files is None or key not in files:
            raise InputError(
                f"种子数字 {figure.id} 需要数据文件 {key}",
                key="seed_figure_file",
                file=meta.get(key, {}).get("path_hint", key),
                hint="用 pandas.read_csv 读取后通过 files 传入",
            )
        info = meta.get(key, {})
        if info.get("loader") == "census":
            tables[table_name] = census_population_table(files[key], year=int(info["year"]))
        else:
            tables[table_name] = files[key]
    for table_name, spec in figure.tables.items():
        tables[table_name] = _inline_table(ind, table_name, spec)
    inputs = IndicatorInputs(tables=tables)
    years = {figure.year}
    for t in tables.values():
        years.update(
            int(y) for y in t.loc[t["unit_id"] == figure.unit_id, "year"] if int(y) <= figure.year
        )
    frames = [
        compute(cat, inputs, year=y, units=[figure.unit_id], indicators=[ind.id])
        for y in sorted(years)
    ]
    allv = pd.concat(frames, ignore_index=True)
    cur = allv[allv["year"] == figure.year]
    hist = allv[allv["year"] != figure.year]
    ev = evaluate(cur, cat, year=figure.year, history=hist if not hist.empty else None)
    row = ev.table[
        (ev.table["indicator"] == ind.id) & (ev.table["unit_id"] == figure.unit_id)
    ].iloc[0]
    value = None if pd.isna(row["value"]) else float(row["value"])
    check = None
    if figure.claim is not None:
        claim_unit = parse_unit(figure.claim.unit or ind.unit)
        shown = None
        if value is not None:
            shown = value * ind.parsed_unit.factor / claim_unit.factor
        check = check_claim(figure.claim, float("nan") if shown is None else shown)
    return SeedFigureResult(
        figure=figure,
        value=value,
        value_unit=ind.unit,
        status=str(row["status"]),
        status_reason=str(row["status_reason"]),
        target=None if pd.isna(row["target"]) else float(row["target"]),
        claim_check=check,
    )
