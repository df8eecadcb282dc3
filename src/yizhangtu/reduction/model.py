"""Reduction ledger model (减量台账): targets, plots, acceptance, transfers and progress.

Plain frozen dataclasses and the column vocabularies of the ledger tables. Areas are held in
m² (ellipsoidal, CGCS2000) and shown in km² or ha; levels follow 市—区—乡镇.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from yizhangtu.errors import ValidationError

__all__ = [
    "ACCEPTANCE_COLUMNS",
    "COUNTED_VERDICTS",
    "LEDGER_COLUMNS",
    "LEVELS",
    "LEVEL_LABELS",
    "PLOT_ALIASES",
    "PLOT_FIELDS",
    "PLOT_REQUIRED",
    "STATUS_LABELS",
    "TARGET_KINDS",
    "TARGET_KIND_LABELS",
    "VERDICTS",
    "VERDICT_LABELS",
    "BalanceRow",
    "PlotMeasure",
    "ProgressRow",
    "RebuildAlert",
    "Target",
    "Transfer",
    "level_of",
    "target_kind_of",
]

#: Jurisdiction levels, top down (市—区—乡镇).
LEVELS: tuple[str, ...] = ("city", "district", "township")
LEVEL_LABELS: dict[str, str] = {"city": "市", "district": "区", "township": "乡镇"}
_LEVEL_ALIASES = {
    "市": "city",
    "区": "district",
    "县": "district",
    "区县": "district",
    "乡镇": "township",
    "乡": "township",
    "镇": "township",
    "街道": "township",
    "地区": "township",
    "街乡": "township",
}

#: ``total``: the target to the horizon (e.g. 2035); ``annual``: that year's task.
TARGET_KINDS: tuple[str, ...] = ("total", "annual")
TARGET_KIND_LABELS: dict[str, str] = {"total": "总目标", "annual": "年度目标"}
_KIND_ALIASES = {
    "总目标": "total",
    "远期目标": "total",
    "目标": "total",
    "年度目标": "annual",
    "年度任务": "annual",
    "年度": "annual",
}

#: Acceptance verdicts (验收结论).
VERDICTS: tuple[str, ...] = ("reduced", "partial", "not_reduced", "not_covered", "flagged")
VERDICT_LABELS: dict[str, str] = {
    "reduced": "已减量",
    "partial": "部分减量",
    "not_reduced": "未减量",
    "not_covered": "调查未覆盖",
    "flagged": "质检存疑",
}
#: Verdicts whose area that left construction land may count (partial only if the pack says so).
COUNTED_VERDICTS: tuple[str, ...] = ("reduced", "partial")

#: Progress status labels.
STATUS_LABELS: dict[str, str] = {
    "done": "已完成",
    "on_track": "正常",
    "behind": "滞后",
    "overdue": "逾期未完成",
    "no_target": "无目标",
    "no_data": "无数据",
}

#: Fields of the plot layer (减量地块图层). ``area_m2`` is computed, never taken from the file.
PLOT_FIELDS: tuple[str, ...] = (
    "plot_id",
    "township",
    "district",
    "year",
    "plot_type",
    "ownership",
    "planned_use",
    "area_m2",
    "declared_area_m2",
    "qc_status",
    "qc_reasons",
    "survey_snapshot",
    "source_file",
    "submitted_by",
    "submitted_at",
)
#: Fields a submitted file must carry (after alias mapping).
PLOT_REQUIRED: tuple[str, ...] = ("plot_id", "plot_type", "ownership", "planned_use")

#: Bureau spreadsheet headers → plot fields (matched after removing spaces).
PLOT_ALIASES: dict[str, str] = {
    "地块编号": "plot_id",
    "地块编码": "plot_id",
    "编号": "plot_id",
    "图斑编号": "plot_id",
    "地块类型": "plot_type",
    "减量类型": "plot_type",
    "类型": "plot_type",
    "权属": "ownership",
    "土地权属": "ownership",
    "权属性质": "ownership",
    "减量后用途": "planned_use",
    "规划用途": "planned_use",
    "拟用途": "planned_use",
    "乡镇": "township",
    "乡镇代码": "township",
    "年度": "year",
    "年份": "year",
    "申报面积(平方米)": "declared_area_m2",
    "申报面积(公顷)": "declared_area_ha",
    "申报面积(亩)": "declared_area_mu",
    "面积(平方米)": "declared_area_m2",
    "面积(公顷)": "declared_area_ha",
    "面积(亩)": "declared_area_mu",
    "图层": "link_layer",
    "关联图层": "link_layer",
    "要素编号": "link_id",
    "要素标识": "link_id",
    "关联要素": "link_id",
}

#: Columns of the acceptance table (reduction_acceptance).
ACCEPTANCE_COLUMNS: tuple[str, ...] = (
    "year",
    "plot_id",
    "township",
    "district",
    "plot_type",
    "ownership",
    "planned_use",
    "area_m2",
    "baseline_cover_m2",
    "cover_m2",
    "base_m2",
    "remaining_m2",
    "reduced_m2",
    "new_m2",
    "share",
    "verdict",
    "counted",
    "counted_m2",
    "severity",
    "message",
    "plot_snapshot",
    "plot_snapshot_hash",
    "baseline_snapshot",
    "baseline_label",
    "baseline_hash",
    "survey_snapshot",
    "survey_label",
    "survey_hash",
    "policy_id",
    "policy_version",
    "policy_hash",
    "provenance_id",
)

#: Columns of the ledger table (reduction_ledger): one row per unit and year and level.
LEDGER_COLUMNS: tuple[str, ...] = (
    "level",
    "unit_code",
    "unit_name",
    "parent_code",
    "year",
    "stock_prev_m2",
    "stock_m2",
    "net_m2",
    "removed_m2",
    "accepted_m2",
    "other_removed_m2",
    "added_m2",
    "residual_m2",
    "coverage_change_m2",
    "plots",
    "plots_reduced",
    "plots_partial",
    "plots_not_reduced",
    "plots_other",
    "baseline_label",
    "survey_label",
    "provenance_id",
)


def level_of(value: Any) -> str:
    """Normalise a level given in English or Chinese (市/区/乡镇 …)."""
    text = str(value).strip()
    if text in LEVELS:
        return text
    if text in _LEVEL_ALIASES:
        return _LEVEL_ALIASES[text]
    raise ValidationError(
        f"未知的层级: {text}",
        key="reduction_bad_level",
        field="level",
        hint="可选: 市、区、乡镇 (city/district/township)",
    )


def target_kind_of(value: Any) -> str:
    """Normalise a target kind (总目标/年度目标, total/annual)."""
    text = str(value).strip()
    if text in TARGET_KINDS:
        return text
    if text in _KIND_ALIASES:
        return _KIND_ALIASES[text]
    raise ValidationError(
        f"未知的目标类型: {text}",
        key="reduction_bad_target_kind",
        field="kind",
        hint="可选: 总目标、年度目标 (total/annual)",
    )


def _finite(value: float, name: str, *, allow_zero: bool = True) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0 or (not allow_zero and v == 0):
        raise ValidationError(
            f"{name} 须为{'非负' if allow_zero else '正'}数: {value!r}",
            key="reduction_bad_number",
            field=name,
        )
    return v


@dataclass(frozen=True)
class Target:
    """A reduction target of one unit (减量目标).

    Attributes
    ----------
    unit_code, unit_name : str
        The unit (区划代码 and name).
    level : {'city', 'district', 'township'}
    parent_code : str or None
        Code of the unit that split its share to this one (市—区—乡镇).
    kind : {'total', 'annual'}
        ``total``: reduction due by ``year`` (the horizon); ``annual``: the task of ``year``.
    year : int
    target_m2 : float
        Net reduction of 城乡建设用地, m².
    clause : str or None
        Where the figure comes from (e.g. ``002 (一(一)二)``).
    synthetic : bool
        A demo figure, not a real target (合成数据).
    """

    unit_code: str
    unit_name: str
    level: str
    kind: str
    year: int
    target_m2: float
    parent_code: str | None = None
    clause: str | None = None
    synthetic: bool = False
    note: str | None = None

    def __post_init__(self) -> None:
        if not str(self.unit_code).strip():
            raise ValidationError(
                "目标缺少单位代码", key="reduction_target_unit", field="unit_code"
            )
        object.__setattr__(self, "unit_code", str(self.unit_code).strip())
        object.__setattr__(self, "level", level_of(self.level))
        object.__setattr__(self, "kind", target_kind_of(self.kind))
        object.__setattr__(self, "year", int(self.year))
        object.__setattr__(self, "target_m2", _finite(self.target_m2, "target_m2"))
        if self.parent_code is not None and str(self.parent_code).strip() in ("", "nan", "None"):
            object.__setattr__(self, "parent_code", None)

    @property
    def key(self) -> tuple[str, str, int]:
        """Identity: (unit, kind, year)."""
        return (self.unit_code, self.kind, self.year)

    def to_row(self) -> dict[str, Any]:
        """Return the row of the ``reduction_targets`` table."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Target:
        """Rebuild from a table row."""

        def _opt(v: Any) -> str | None:
            return (
                None
                if v is None
                or (isinstance(v, float) and math.isnan(v))
                or str(v) in ("", "nan", "None", "<NA>")
                else str(v)
            )

        return cls(
            unit_code=str(row["unit_code"]),
            unit_name=str(row.get("unit_name") or row["unit_code"]),
            level=str(row["level"]),
            kind=str(row["kind"]),
            year=int(row["year"]),
            target_m2=float(row["target_m2"]),
            parent_code=_opt(row.get("parent_code")),
            clause=_opt(row.get("clause")),
            synthetic=bool(row.get("synthetic", False)),
            note=_opt(row.get("note")),
        )


@dataclass(frozen=True)
class Transfer:
    """A quota transfer (指标联动) from a relieving unit (疏解地) to a receiving unit (承接地).

    The relieving unit gives up ``quota_m2`` of its reduction; the receiving unit may build
    ``quota_m2 × ratio``. Compensation (人口承接, 产值分计 …, 001) is recorded with it.
    """

    transfer_id: str
    from_unit: str
    to_unit: str
    year: int
    quota_m2: float
    ratio: float
    population_credit: float | None = None
    output_credit_wan_yuan: float | None = None
    compensation: tuple[str, ...] = ()
    terms: str | None = None

    def __post_init__(self) -> None:
        for name in ("transfer_id", "from_unit", "to_unit"):
            if not str(getattr(self, name) or "").strip():
                raise ValidationError(
                    f"指标联动缺少 {name}", key="reduction_transfer_field", field=name
                )
        object.__setattr__(self, "year", int(self.year))
        object.__setattr__(self, "quota_m2", _finite(self.quota_m2, "quota_m2", allow_zero=False))
        object.__setattr__(self, "ratio", _finite(self.ratio, "ratio", allow_zero=False))
        object.__setattr__(self, "compensation", tuple(self.compensation))

    @property
    def received_m2(self) -> float:
        """Quota credited to the receiving unit."""
        return self.quota_m2 * self.ratio

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (record data)."""
        d = asdict(self)
        d["compensation"] = list(self.compensation)
        d["received_m2"] = self.received_m2
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Transfer:
        """Rebuild from :meth:`to_dict`."""
        return cls(
            transfer_id=str(d["transfer_id"]),
            from_unit=str(d["from_unit"]),
            to_unit=str(d["to_unit"]),
            year=int(d["year"]),
            quota_m2=float(d["quota_m2"]),
            ratio=float(d["ratio"]),
            population_credit=None
            if d.get("population_credit") is None
            else float(d["population_credit"]),
            output_credit_wan_yuan=None
            if d.get("output_credit_wan_yuan") is None
            else float(d["output_credit_wan_yuan"]),
            compensation=tuple(d.get("compensation") or ()),
            terms=d.get("terms"),
        )


@dataclass(frozen=True)
class PlotMeasure:
    """What the surveys say about one plot, in m² (one equal-area plane per job).

    ``base_m2 - remaining_m2 == reduced_m2 - new_m2`` when both surveys tile the plot.
    """

    plot_id: str
    township: str
    area_m2: float
    baseline_cover_m2: float
    cover_m2: float
    base_m2: float
    remaining_m2: float
    reduced_m2: float
    new_m2: float
    flagged: bool = False
    flag_reasons: str = ""

    @property
    def share(self) -> float:
        """Share of the baseline construction area that left construction land."""
        return self.reduced_m2 / self.base_m2 if self.base_m2 > 0 else 0.0


@dataclass(frozen=True)
class RebuildAlert:
    """Construction reappearing on an accepted plot (复建)."""

    plot_id: str
    township: str
    accepted_year: int
    survey_label: str
    survey_year: int
    rebuilt_m2: float
    plot_area_m2: float
    alert: bool
    severity: str
    message: str
    provenance_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class BalanceRow:
    """增减挂钩 balance of one unit through ``year``."""

    unit_code: str
    unit_name: str
    year: int
    added_m2: float
    own_m2: float
    sent_m2: float
    received_m2: float
    status: str
    severity: str
    message: str

    @property
    def allowance_m2(self) -> float:
        """New construction the unit may have: own reduction − quota sent + quota received."""
        return self.own_m2 - self.sent_m2 + self.received_m2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self) | {"allowance_m2": self.allowance_m2}


@dataclass(frozen=True)
class ProgressRow:
    """Progress of one unit towards its target as of ``year`` (computed or reported)."""

    unit_code: str
    unit_name: str
    level: str
    year: int
    source: str
    target_m2: float | None
    horizon_year: int | None
    accepted_m2: float | None
    net_m2: float | None
    removed_m2: float | None = None
    added_m2: float | None = None
    percent_complete: float | None = None
    years_left: int | None = None
    required_pace_m2: float | None = None
    achieved_pace_m2: float | None = None
    annual_target_m2: float | None = None
    annual_net_m2: float | None = None
    status: str = "no_data"
    severity: str = "info"
    message: str = ""
    years_counted: int = 0
    parent_code: str | None = None
    note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def behind(self) -> bool:
        """True when the unit is behind pace (or overdue)."""
        return self.status in ("behind", "overdue")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with km² figures alongside m²."""
        d = asdict(self)
        d["extra"] = dict(self.extra)
        d["status_label"] = STATUS_LABELS.get(self.status, self.status)
        d["level_label"] = LEVEL_LABELS.get(self.level, self.level)
        for k in (
            "target_m2",
            "accepted_m2",
            "net_m2",
            "removed_m2",
            "added_m2",
            "required_pace_m2",
            "achieved_pace_m2",
            "annual_target_m2",
            "annual_net_m2",
        ):
            v = getattr(self, k)
            d[k.replace("_m2", "_km2")] = None if v is None else v / 1e6
        d["behind"] = self.behind
        return d
