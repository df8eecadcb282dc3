"""Key-project library (重点项目库): levels, categories, year plans, yearly list, progress.

002 (一(二)一): "全面梳理市区各类重点项目2级8类399个项目清单, 分年度制定重点项目综合清单". The two
levels (市级/区级) follow the seed; the eight category names are a configurable example
(``data/project_library.yaml``) because the seed does not list them.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import geopandas as gpd
import pandas as pd
import shapely

from yizhangtu.errors import GeometryError, ValidationError
from yizhangtu.tasks._data import load_packaged_yaml, packaged_text
from yizhangtu.tasks.model import parse_date

__all__ = [
    "PROJECT_SHEETS",
    "Project",
    "ProjectProgress",
    "ProjectVocabulary",
    "YearPlan",
    "YearlyList",
    "compile_yearly_list",
    "library_from_mapping",
    "library_from_xlsx",
    "library_summary",
    "project_from_mapping",
    "project_progress_from_mapping",
    "project_progress_table",
    "project_vocabulary",
    "projects_from_records",
    "projects_to_geodataframe",
    "yearly_list_html",
    "yearly_list_xlsx",
]


@dataclass(frozen=True)
class ProjectVocabulary:
    """Levels, categories and statuses a project may take (``data/project_library.yaml``)."""

    levels: tuple[tuple[str, str], ...]
    categories: tuple[tuple[str, str], ...]
    statuses: tuple[tuple[str, str], ...]
    categories_example: bool
    investment_unit: str
    source: str

    def _resolve(self, pairs: tuple[tuple[str, str], ...], value: Any, what: str, pid: str) -> str:
        text = str(value or "").strip()
        for code, name in pairs:
            if text in (code, name):
                return name
        raise ValidationError(
            f"项目 {pid} 的{what}「{text}」无效",
            key={"级别": "project_level_unknown", "类别": "project_category_unknown"}.get(
                what, "project_status_unknown"
            ),
            feature=pid,
            hint="可选: " + "、".join(n for _, n in pairs),
        )

    def level(self, value: Any, pid: str = "") -> str:
        """Canonical level name (市级/区级)."""
        return self._resolve(self.levels, value, "级别", pid)

    def category(self, value: Any, pid: str = "") -> str:
        """Canonical category name."""
        return self._resolve(self.categories, value, "类别", pid)

    def status(self, value: Any, pid: str = "") -> str:
        """Canonical status name."""
        return self._resolve(self.statuses, value, "状态", pid)


def project_vocabulary(mapping: Mapping[str, Any] | None = None) -> ProjectVocabulary:
    """Return the packaged vocabulary, or one built from ``mapping`` (same layout as the YAML)."""
    d = mapping or load_packaged_yaml("data/project_library.yaml")
    return ProjectVocabulary(
        levels=tuple((str(x["code"]), str(x["name"])) for x in d["levels"]),
        categories=tuple((str(x["code"]), str(x["name"])) for x in d["categories"]),
        statuses=tuple((str(x["code"]), str(x["name"])) for x in d["statuses"]),
        categories_example=bool(d.get("categories_example", False)),
        investment_unit=str(d.get("investment_unit") or "万元"),
        source=str(d.get("source") or ""),
    )


@dataclass(frozen=True)
class YearPlan:
    """What a project plans in one year."""

    year: int
    planned_investment: float | None = None
    milestone: str = ""


@dataclass(frozen=True, eq=False)
class Project:
    """One key project; geometry (CGCS2000 lon/lat) is optional."""

    id: str
    name: str
    level: str
    category: str
    status: str
    total_investment: float | None = None
    year_plans: tuple[YearPlan, ...] = ()
    lead: str = ""
    location: str = ""
    start_year: int | None = None
    end_year: int | None = None
    geometry: Any = None
    note: str = ""
    synthetic: bool = False


@dataclass(frozen=True)
class ProjectProgress:
    """A progress report on a project."""

    project_id: str
    reported_on: dt.date
    progress_pct: float
    invested_to_date: float | None = None
    note: str = ""
    evidence: tuple[str, ...] = ()


def _num(v: Any, what: str, pid: str) -> float | None:
    if (
        v is None
        or (isinstance(v, float) and math.isnan(v))
        or (isinstance(v, str) and not v.strip())
    ):
        return None
    try:
        x = float(str(v).replace(",", "")) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        raise ValidationError(
            f"项目 {pid} 的{what}不是数字: {v!r}", key="number_invalid", feature=pid
        ) from None
    if x < 0:
        raise ValidationError(
            f"项目 {pid} 的{what}不能为负: {v!r}", key="number_invalid", feature=pid
        )
    return x


def _geometry(d: Mapping[str, Any], pid: str) -> Any:
    g = d.get("geometry")
    wkt = d.get("geometry_wkt") or (g if isinstance(g, str) else None)
    try:
        if wkt:
            geom = shapely.from_wkt(str(wkt))
        elif isinstance(g, Mapping):
            geom = shapely.geometry.shape(g)
        else:
            return None
    except Exception as e:  # shapely raises GEOSException or ValueError
        raise GeometryError(
            f"项目 {pid} 的几何无法解析: {e}", key="geometry_invalid", feature=pid
        ) from None
    if geom.is_empty:
        return None
    if not geom.is_valid:
        raise GeometryError(
            f"项目 {pid} 的几何无效: {shapely.is_valid_reason(geom)}",
            key="geometry_invalid",
            feature=pid,
        )
    return geom


def project_from_mapping(d: Mapping[str, Any], vocab: ProjectVocabulary | None = None) -> Project:
    """Build and validate a :class:`Project` (level/category/status by code or name)."""
    v = vocab or project_vocabulary()
    pid = str(d.get("id") or "").strip()
    if not pid:
        raise ValidationError("项目缺少编号", key="field_missing", field="id")
    name = str(d.get("name") or "").strip()
    if not name:
        raise ValidationError(
            f"项目 {pid} 缺少名称", key="field_missing", feature=pid, field="name"
        )
    plans = []
    for p in d.get("year_plans") or ():
        year = int(p["year"])
        plans.append(
            YearPlan(
                year=year,
                planned_investment=_num(p.get("planned_investment"), f"{year} 年计划投资", pid),
                milestone=str(p.get("milestone") or ""),
            )
        )
    years = [p.year for p in plans]
    if len(set(years)) != len(years):
        raise ValidationError(
            f"项目 {pid} 的年度计划年份重复", key="year_plan_duplicate", feature=pid
        )
    sy = int(d["start_year"]) if d.get("start_year") else None
    ey = int(d["end_year"]) if d.get("end_year") else None
    if sy and ey and ey < sy:
        raise ValidationError(
            f"项目 {pid} 的完工年份早于开工年份", key="deadline_before_start", feature=pid
        )
    return Project(
        id=pid,
        name=name,
        level=v.level(d.get("level"), pid),
        category=v.category(d.get("category"), pid),
        status=v.status(d.get("status") or v.statuses[0][1], pid),
        total_investment=_num(d.get("total_investment"), "总投资", pid),
        year_plans=tuple(sorted(plans, key=lambda p: p.year)),
        lead=str(d.get("lead") or ""),
        location=str(d.get("location") or ""),
        start_year=sy,
        end_year=ey,
        geometry=_geometry(d, pid),
        note=str(d.get("note") or ""),
        synthetic=bool(d.get("synthetic", False)),
    )


def projects_from_records(
    records: Iterable[Mapping[str, Any]], vocab: ProjectVocabulary | None = None
) -> tuple[Project, ...]:
    """Build projects; ids must be unique."""
    v = vocab or project_vocabulary()
    out = tuple(project_from_mapping(r, v) for r in records)
    ids = [p.id for p in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValidationError("项目编号重复: " + "、".join(dup), key="project_duplicate")
    return out


def project_progress_from_mapping(d: Mapping[str, Any]) -> ProjectProgress:
    """Build a project progress report (0–100 %)."""
    pid = str(d.get("project_id") or "").strip()
    if not pid:
        raise ValidationError("项目进度缺少项目编号", key="field_missing", field="project_id")
    p = _num(d.get("progress_pct"), "进度", pid)
    if p is None:
        raise ValidationError(
            f"项目 {pid} 的进度为空", key="field_missing", feature=pid, field="progress_pct"
        )
    if p > 100:
        raise ValidationError(
            f"项目 {pid} 报送的进度为 {p:g}%, 超过 100%", key="progress_above_100", feature=pid
        )
    ev = d.get("evidence")
    return ProjectProgress(
        project_id=pid,
        reported_on=parse_date(d.get("reported_on"), field="报送日期", feature=pid),
        progress_pct=p,
        invested_to_date=_num(d.get("invested_to_date"), "累计完成投资", pid),
        note=str(d.get("note") or ""),
        evidence=tuple(str(ev).replace(";", "、").split("、"))
        if isinstance(ev, str)
        else tuple(ev or ()),
    )


def library_summary(
    projects: Iterable[Project], vocab: ProjectVocabulary | None = None
) -> pd.DataFrame:
    """Project counts by level (rows) and category (columns), with totals (合计)."""
    v = vocab or project_vocabulary()
    ps = list(projects)
    levels = [n for _, n in v.levels]
    cats = [n for _, n in v.categories]
    counts: dict[tuple[str, str], int] = {}
    for p in ps:
        counts[(p.level, p.category)] = counts.get((p.level, p.category), 0) + 1
    table = pd.DataFrame(
        [[counts.get((lv, ct), 0) for ct in cats] for lv in levels], index=levels, columns=cats
    )
    table["合计"] = table.sum(axis=1)
    table.loc["合计"] = table.sum(axis=0)
    table.index.name = "级别"
    return table


@dataclass(frozen=True, eq=False)
class YearlyList:
    """The yearly comprehensive list (年度重点项目综合清单)."""

    year: int
    rows: pd.DataFrame
    by_level_category: pd.DataFrame
    investment_unit: str
    categories_example: bool
    synthetic: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready list."""
        return {
            "year": self.year,
            "synthetic": self.synthetic,
            "investment_unit": self.investment_unit,
            "projects": [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in self.rows.to_dict(orient="records")
            ],
            "summary": [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in self.by_level_category.reset_index().to_dict(orient="records")
            ],
        }


def compile_yearly_list(
    projects: Iterable[Project], year: int, vocab: ProjectVocabulary | None = None
) -> YearlyList:
    """Compile the comprehensive list for ``year``.

    A project is on the list when it has a year plan for ``year`` (basis 年度计划) or, without
    year plans, when ``start_year ≤ year ≤ end_year`` (basis 建设周期). Completed or suspended
    projects without a plan for that year are left out. Rows are ordered by level (市级 first),
    category order of the vocabulary, then id.
    """
    v = vocab or project_vocabulary()
    lvl = {n: i for i, (_, n) in enumerate(v.levels)}
    cat = {n: i for i, (_, n) in enumerate(v.categories)}
    rows = []
    synthetic = False
    for p in projects:
        plan = next((yp for yp in p.year_plans if yp.year == year), None)
        if plan is not None:
            basis = "年度计划"
        elif (
            not p.year_plans
            and p.start_year
            and p.start_year <= year <= (p.end_year or year)
            and p.status not in ("已竣工", "暂缓")
        ):
            basis = "建设周期"
        else:
            continue
        synthetic = synthetic or p.synthetic
        rows.append(
            {
                "id": p.id,
                "name": p.name,
                "level": p.level,
                "category": p.category,
                "status": p.status,
                "lead": p.lead,
                "total_investment": p.total_investment,
                "planned_investment": plan.planned_investment if plan else None,
                "milestone": plan.milestone if plan else "",
                "basis": basis,
                "_o": (lvl.get(p.level, 99), cat.get(p.category, 99), p.id),
            }
        )
    rows.sort(key=lambda r: cast(tuple[int, int, str], r["_o"]))
    for i, r in enumerate(rows, start=1):
        r.pop("_o")
        r["seq"] = i
    cols = [
        "seq",
        "id",
        "name",
        "level",
        "category",
        "status",
        "lead",
        "total_investment",
        "planned_investment",
        "milestone",
        "basis",
    ]
    df = pd.DataFrame(rows, columns=cols)
    if len(df):
        g = df.groupby(["level", "category"], sort=False).agg(
            projects=("id", "count"),
            planned_investment=("planned_investment", lambda s: float(s.fillna(0).sum())),
        )
    else:
        g = pd.DataFrame(columns=["projects", "planned_investment"])
    return YearlyList(
        year=year,
        rows=df,
        by_level_category=g,
        investment_unit=v.investment_unit,
        categories_example=v.categories_example,
        synthetic=synthetic,
    )


def project_progress_table(
    projects: Iterable[Project], reports: Iterable[ProjectProgress], at: dt.date
) -> pd.DataFrame:
    """Latest progress per project at ``at`` (reports after ``at`` ignored).

    Columns: ``id``, ``name``, ``level``, ``category``, ``status``, ``progress_pct``,
    ``reported_on``, ``invested_to_date``, ``investment_share`` (of total), ``note``.
    """
    ps = list(projects)
    known = {p.id for p in ps}
    rs = list(reports)
    for r in rs:
        if r.project_id not in known:
            raise ValidationError(
                f"项目进度引用了不存在的项目编号: {r.project_id}",
                key="project_not_found",
                feature=r.project_id,
            )
    latest: dict[str, ProjectProgress] = {}
    for r in sorted((r for r in rs if r.reported_on <= at), key=lambda r: r.reported_on):
        latest[r.project_id] = r
    out = []
    for p in ps:
        last = latest.get(p.id)
        inv = last.invested_to_date if last else None
        out.append(
            {
                "id": p.id,
                "name": p.name,
                "level": p.level,
                "category": p.category,
                "status": p.status,
                "progress_pct": last.progress_pct if last else 0.0,
                "reported_on": last.reported_on.isoformat() if last else None,
                "invested_to_date": inv,
                "investment_share": (inv / p.total_investment)
                if inv is not None and p.total_investment
                else None,
                "note": last.note if last else "",
            }
        )
    return pd.DataFrame(out)


def projects_to_geodataframe(projects: Iterable[Project]) -> gpd.GeoDataFrame:
    """Projects with geometry as a GeoDataFrame in EPSG:4490 (projects without one are left out)."""
    ps = [p for p in projects if p.geometry is not None]
    return gpd.GeoDataFrame(
        {
            "id": [p.id for p in ps],
            "name": [p.name for p in ps],
            "level": [p.level for p in ps],
            "category": [p.category for p in ps],
            "status": [p.status for p in ps],
            "total_investment": [p.total_investment for p in ps],
        },
        geometry=[p.geometry for p in ps],
        crs=4490,
    )


_HEAD = {
    "seq": "序号",
    "id": "编号",
    "name": "项目名称",
    "level": "级别",
    "category": "类别",
    "status": "状态",
    "lead": "责任单位",
    "total_investment": "总投资",
    "planned_investment": "年度计划投资",
    "milestone": "年度节点",
    "basis": "列入依据",
}


def yearly_list_xlsx(yl: YearlyList) -> bytes:
    """Render the yearly list as xlsx (清单, 分类汇总, 说明)."""
    from openpyxl import Workbook

    from yizhangtu.tasks.excel import write_sheet

    wb = Workbook()
    wb.remove(wb.active)
    cols = list(_HEAD)
    heads = [_HEAD[c] + (f"({yl.investment_unit})" if "investment" in c else "") for c in cols]
    write_sheet(
        wb,
        f"{yl.year}年综合清单",
        heads,
        (
            [None if (isinstance(r[c], float) and math.isnan(r[c])) else r[c] for c in cols]
            for r in yl.rows.to_dict(orient="records")
        ),
        widths={3: 36, 10: 30},
    )
    summ = yl.by_level_category.reset_index()
    write_sheet(
        wb,
        "分类汇总",
        ["级别", "类别", "项目数", f"年度计划投资({yl.investment_unit})"],
        summ.itertuples(index=False),
    )
    write_sheet(
        wb,
        "说明",
        ["项目", "内容"],
        [
            ["依据", "002 (一(二)一): 分年度制定重点项目综合清单"],
            [
                "类别",
                "示例类别 (002 未列出 8 类名称, 可配置)" if yl.categories_example else "按配置",
            ],
            ["合成数据", "是" if yl.synthetic else "否"],
        ],
        widths={2: 80},
    )
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def yearly_list_html(yl: YearlyList, title: str | None = None) -> str:
    """Render the yearly list as a standalone HTML page."""
    import jinja2

    env = jinja2.Environment(
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True)
    )
    rows = [
        {
            c: (
                ""
                if r[c] is None or (isinstance(r[c], float) and math.isnan(r[c]))
                else (f"{r[c]:,.0f}" if isinstance(r[c], float) else r[c])
            )
            for c in _HEAD
        }
        for r in yl.rows.to_dict(orient="records")
    ]
    heads = [_HEAD[c] + (f"({yl.investment_unit})" if "investment" in c else "") for c in _HEAD]
    summary = []
    for key, r in yl.by_level_category.iterrows():
        lv, ct = cast(tuple[str, str], key)
        summary.append(
            {
                "level": lv,
                "category": ct,
                "projects": int(r["projects"]),
                "planned": f"{r['planned_investment']:,.0f}",
            }
        )
    t = title or f"{yl.year}年重点项目综合清单" + ("(合成数据)" if yl.synthetic else "")
    return env.from_string(packaged_text("templates/projects.html.j2")).render(
        title=t,
        heads=heads,
        cols=list(_HEAD),
        rows=rows,
        summary=summary,
        unit=yl.investment_unit,
        categories_example=yl.categories_example,
        synthetic=yl.synthetic,
    )


#: Project workbook layout: sheet → [(Chinese header, key)].
PROJECT_SHEETS: dict[str, list[tuple[str, str]]] = {
    "项目": [
        ("编号", "id"),
        ("项目名称", "name"),
        ("级别", "level"),
        ("类别", "category"),
        ("状态", "status"),
        ("总投资", "total_investment"),
        ("责任单位", "lead"),
        ("位置", "location"),
        ("开工年份", "start_year"),
        ("完工年份", "end_year"),
        ("几何(WKT)", "geometry_wkt"),
        ("备注", "note"),
    ],
    "年度计划": [
        ("项目编号", "project_id"),
        ("年份", "year"),
        ("计划投资", "planned_investment"),
        ("年度节点", "milestone"),
    ],
    "项目进度": [
        ("项目编号", "project_id"),
        ("报送日期", "reported_on"),
        ("进度(%)", "progress_pct"),
        ("累计完成投资", "invested_to_date"),
        ("进展情况", "note"),
        ("佐证材料", "evidence"),
    ],
}


def _sheet_records(ws: Any, spec: list[tuple[str, str]]) -> list[dict[str, Any]]:
    lookup = {h: k for h, k in spec} | {k: k for _, k in spec}
    it = ws.iter_rows(values_only=True)
    header = next(it, None)
    if header is None:
        return []
    cols = {
        i: lookup[str(h).strip()]
        for i, h in enumerate(header)
        if h is not None and str(h).strip() in lookup
    }
    out = []
    for row in it:
        rec = {cols[i]: v for i, v in enumerate(row) if i in cols}
        if any(v is not None and str(v).strip() != "" for v in rec.values()):
            out.append(rec)
    return out


def library_from_mapping(
    d: Mapping[str, Any], vocab: ProjectVocabulary | None = None
) -> tuple[tuple[Project, ...], tuple[ProjectProgress, ...]]:
    """Projects and progress reports from a YAML-like mapping (``projects``, ``progress``)."""
    v = project_vocabulary(d["vocabulary"]) if d.get("vocabulary") else vocab
    projects = projects_from_records(d.get("projects") or (), v)
    progress = tuple(project_progress_from_mapping(r) for r in (d.get("progress") or ()))
    known = {p.id for p in projects}
    bad = sorted({r.project_id for r in progress} - known)
    if bad:
        raise ValidationError(
            "项目进度引用了不存在的项目编号: " + "、".join(bad), key="project_not_found"
        )
    return projects, progress


def library_from_xlsx(
    data: bytes, vocab: ProjectVocabulary | None = None, *, file: str | None = None
) -> tuple[tuple[Project, ...], tuple[ProjectProgress, ...]]:
    """Projects and progress from an xlsx workbook (sheets 项目, 年度计划, 项目进度)."""
    from openpyxl import load_workbook

    from yizhangtu.errors import FileFormatError

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several unrelated types for a bad file
        raise FileFormatError(
            f"无法读取 Excel 文件: {e}", key="xlsx_unreadable", file=file
        ) from None
    if "项目" not in wb.sheetnames:
        raise FileFormatError("Excel 文件中没有「项目」工作表", key="xlsx_no_projects", file=file)
    recs = _sheet_records(wb["项目"], PROJECT_SHEETS["项目"])
    plans: dict[str, list[dict[str, Any]]] = {}
    if "年度计划" in wb.sheetnames:
        for r in _sheet_records(wb["年度计划"], PROJECT_SHEETS["年度计划"]):
            plans.setdefault(str(r.pop("project_id")).strip(), []).append(r)
    for r in recs:
        r["id"] = str(r.get("id") or "").strip()
        r["year_plans"] = plans.pop(r["id"], [])
    if plans:
        raise ValidationError(
            "「年度计划」引用了不存在的项目编号: " + "、".join(sorted(plans)),
            key="project_not_found",
            file=file,
        )
    progress = (
        [dict(r) for r in _sheet_records(wb["项目进度"], PROJECT_SHEETS["项目进度"])]
        if "项目进度" in wb.sheetnames
        else []
    )
    return library_from_mapping({"projects": recs, "progress": progress}, vocab)
