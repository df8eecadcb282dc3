"""Certificate backlog (历史遗留"办证难"): projects, each home's certificate status, progress.

Seed 002 一(二)六 reports that since 2021 Chaoyang opened certificate channels for 66
projects and 10.8万 homes using the "二十字工作法" (符合规划、楼宇安全、实测准确、名单合法、
追责到底). Block reasons name the principle they fail (packaged ``data/backlog.yaml``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

import pandas as pd
import yaml
from openpyxl import Workbook
from openpyxl.styles import Font

from yizhangtu.errors import ValidationError
from yizhangtu.policy.rules import jsonable
from yizhangtu.rights.model import RegistryProblem, raise_problems

__all__ = [
    "HOME_COLUMNS",
    "PROJECT_COLUMNS",
    "BacklogProgress",
    "CertStatus",
    "backlog_from_workbook",
    "backlog_progress",
    "backlog_to_workbook",
    "block_reasons",
    "validate_backlog",
]


class CertStatus(enum.StrEnum):
    """Certificate status of one home."""

    ISSUED = "已发证"
    IN_PROGRESS = "办理中"
    BLOCKED = "受阻"


PROJECT_COLUMNS: dict[str, str] = {
    "project_id": "项目编号",
    "name": "项目名称",
    "district": "区",
    "street": "街乡",
    "homes": "套数",
    "synthetic": "合成数据",
}
HOME_COLUMNS: dict[str, str] = {
    "project_id": "项目编号",
    "home_id": "房屋编号",
    "status": "办证状态",
    "block_reason": "受阻原因",
}


@lru_cache(maxsize=1)
def _vocab() -> dict[str, Any]:
    text = (files("yizhangtu.rights") / "data" / "backlog.yaml").read_text(encoding="utf-8")
    return dict(yaml.safe_load(text))


def block_reasons() -> list[dict[str, str]]:
    """Block reasons (code, label, principle of the 二十字工作法)."""
    return [dict(r) for r in _vocab()["block_reasons"]]


_STATUS_ALIASES = {
    "issued": "已发证",
    "in_progress": "办理中",
    "blocked": "受阻",
    "已办证": "已发证",
    "在办": "办理中",
}


def _status_map() -> dict[str, str]:
    out = {st.value: st.value for st in CertStatus}
    out.update(_STATUS_ALIASES)
    return out


def _reason_map() -> dict[str, str]:
    return {
        k: r["label"] for r in block_reasons() for k in (r["code"], r["label"], r["principle"]) if k
    }


def _lookup(col: pd.Series, table: dict[str, str]) -> pd.Series:
    """Map cells through ``table`` after stripping (vectorised); unknown or blank → None."""
    text = (
        col.astype(object)
        .where(col.notna(), None)
        .map(lambda v: v.strip() if isinstance(v, str) else v)
    )
    out = text.map(table)
    return out.astype(object).where(out.notna(), None)


def validate_backlog(
    projects: pd.DataFrame, homes: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalise and check projects and homes; one ValidationError lists every problem.

    Checks: unique project and home ids, homes of known projects, known status, blocked
    homes with a known reason, and each project's declared number of homes (``homes``)
    equal to the homes listed.
    """
    problems: list[RegistryProblem] = []
    for col in ("project_id", "name", "district", "homes"):
        if col not in projects.columns:
            problems.append(
                RegistryProblem(
                    "missing_column", f"项目表缺少列 {PROJECT_COLUMNS[col]}", "项目", col
                )
            )
    for col in ("project_id", "home_id", "status"):
        if col not in homes.columns:
            problems.append(
                RegistryProblem("missing_column", f"房屋表缺少列 {HOME_COLUMNS[col]}", "房屋", col)
            )
    raise_problems(problems, "办证台账")
    p = projects.copy()
    p["project_id"] = p["project_id"].astype(str).str.strip()
    if "street" not in p.columns:
        p["street"] = None
    if "synthetic" not in p.columns:
        p["synthetic"] = False
    dup = p["project_id"][p["project_id"].duplicated()].unique()
    for pid in dup:
        problems.append(
            RegistryProblem("duplicate_project", f"项目编号 {pid} 重复", pid, "project_id")
        )
    h = homes.copy()
    h["project_id"] = h["project_id"].astype(str).str.strip()
    h["home_id"] = h["home_id"].astype(str).str.strip()
    if "block_reason" not in h.columns:
        h["block_reason"] = None
    known = set(p["project_id"])
    unknown = sorted(set(h["project_id"]) - known)
    for pid in unknown[:20]:
        problems.append(
            RegistryProblem("unknown_project", f"房屋引用了未登记的项目 {pid}", pid, "project_id")
        )
    dup_h = h[h.duplicated(["project_id", "home_id"])]
    for _, r in dup_h.head(20).iterrows():
        problems.append(
            RegistryProblem(
                "duplicate_home",
                f"项目 {r['project_id']} 的房屋编号 {r['home_id']} 重复",
                r["home_id"],
                "home_id",
            )
        )
    statuses = _lookup(h["status"], _status_map())
    bad = h[statuses.isna()]
    for _, r in bad.head(20).iterrows():
        problems.append(
            RegistryProblem(
                "bad_cert_status",
                f"房屋 {r['project_id']}/{r['home_id']} 的办证状态 {r['status']!r} 无法识别(可选: "
                + "、".join(s.value for s in CertStatus)
                + ")",
                r["home_id"],
                "status",
            )
        )
    h["status"] = statuses
    reasons = _lookup(h["block_reason"], _reason_map())
    blocked = h["status"] == CertStatus.BLOCKED.value
    no_reason = h[blocked & reasons.isna()]
    for _, r in no_reason.head(20).iterrows():
        problems.append(
            RegistryProblem(
                "block_reason_missing",
                f"受阻房屋 {r['project_id']}/{r['home_id']} 须填写可识别的受阻原因(可选: "
                + "、".join(x["label"] for x in block_reasons())
                + ")",
                r["home_id"],
                "block_reason",
            )
        )
    h["block_reason"] = reasons.where(blocked, None)
    counts = h.groupby("project_id").size()
    for _, r in p.iterrows():
        declared = r["homes"]
        listed = int(counts.get(r["project_id"], 0))
        try:
            ok = int(declared) == listed
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(
                RegistryProblem(
                    "homes_mismatch",
                    f"项目 {r['project_id']} 申报 {declared} 套, 房屋表列出 {listed} 套",
                    r["project_id"],
                    "homes",
                )
            )
    raise_problems(problems, "办证台账")
    p["homes"] = p["homes"].astype(int)
    p["synthetic"] = p["synthetic"].fillna(False).astype(bool)
    return p.reset_index(drop=True), h.reset_index(drop=True)


@dataclass(frozen=True)
class BacklogProgress:
    """Per-project, per-street and per-district certificate progress."""

    projects: pd.DataFrame
    streets: pd.DataFrame
    districts: pd.DataFrame
    reasons: pd.DataFrame
    totals: dict[str, Any]
    synthetic: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return jsonable(
            {
                "synthetic": self.synthetic,
                "totals": self.totals,
                "districts": self.districts.to_dict(orient="records"),
                "streets": self.streets.to_dict(orient="records"),
                "projects": self.projects.to_dict(orient="records"),
                "block_reasons": self.reasons.to_dict(orient="records"),
            }
        )


def _shares(df: pd.DataFrame) -> pd.DataFrame:
    df = df.rename(columns={"已发证": "issued", "办理中": "in_progress", "受阻": "blocked"})
    for col in ("issued", "in_progress", "blocked"):
        if col not in df.columns:
            df[col] = 0
    df["homes"] = df[["issued", "in_progress", "blocked"]].sum(axis=1)
    df["issued_share"] = (df["issued"] / df["homes"]).where(df["homes"] > 0)
    df["blocked_share"] = (df["blocked"] / df["homes"]).where(df["homes"] > 0)
    return df


def backlog_progress(projects: pd.DataFrame, homes: pd.DataFrame) -> BacklogProgress:
    """Progress of every project, street and district (validated first)."""
    p, h = validate_backlog(projects, homes)
    counts = h.pivot_table(
        index="project_id", columns="status", values="home_id", aggfunc="count", fill_value=0
    )
    per = _shares(counts.reset_index())
    per = p[["project_id", "name", "district", "street", "synthetic"]].merge(
        per, on="project_id", how="left"
    )
    per[["issued", "in_progress", "blocked", "homes"]] = (
        per[["issued", "in_progress", "blocked", "homes"]].fillna(0).astype(int)
    )

    def group(by: list[str]) -> pd.DataFrame:
        g = per.groupby(by, dropna=False)[["issued", "in_progress", "blocked"]].sum().reset_index()
        g["projects"] = per.groupby(by, dropna=False).size().to_numpy()
        g = _shares(g)
        g["projects_done"] = (
            per.assign(done=per["issued"] == per["homes"])
            .groupby(by, dropna=False)["done"]
            .sum()
            .to_numpy()
        )
        return g

    streets = group(["district", "street"])
    districts = group(["district"])
    blocked = h[h["status"] == CertStatus.BLOCKED.value]
    reasons = blocked.groupby("block_reason").size().rename("homes").reset_index()
    principle = {r["label"]: r["principle"] for r in block_reasons()}
    reasons["principle"] = reasons["block_reason"].map(principle)
    reasons = reasons.sort_values("homes", ascending=False).reset_index(drop=True)
    total = int(per["homes"].sum())
    totals = {
        "projects": len(per),
        "homes": total,
        "issued": int(per["issued"].sum()),
        "in_progress": int(per["in_progress"].sum()),
        "blocked": int(per["blocked"].sum()),
        "issued_share": float(per["issued"].sum() / total) if total else None,
        "projects_done": int((per["issued"] == per["homes"]).sum()),
        "source": _vocab()["source"],
    }
    return BacklogProgress(
        projects=per,
        streets=streets,
        districts=districts,
        reasons=reasons,
        totals=totals,
        synthetic=bool(p["synthetic"].any()),
    )


def _read_sheet(wb: Workbook, sheet: str, columns: dict[str, str]) -> pd.DataFrame:
    if sheet not in wb.sheetnames:
        raise ValidationError(f"工作簿中没有工作表 {sheet}", key="missing_sheet", field=sheet)
    rows = list(wb[sheet].iter_rows(values_only=True))
    if not rows:
        return pd.DataFrame(columns=list(columns))
    reverse = {v: k for k, v in columns.items()}
    head = [
        reverse.get(str(c).strip(), str(c).strip()) if c is not None else f"_{i}"
        for i, c in enumerate(rows[0])
    ]
    return pd.DataFrame([list(r) for r in rows[1:] if any(v is not None for v in r)], columns=head)


def backlog_from_workbook(wb: Workbook) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Projects (sheet 项目) and homes (sheet 房屋) from a workbook, validated."""
    projects = _read_sheet(wb, "项目", PROJECT_COLUMNS)
    homes = _read_sheet(wb, "房屋", HOME_COLUMNS)
    if "synthetic" in projects.columns:
        projects["synthetic"] = projects["synthetic"].map(lambda v: v in (True, "是", 1, "true"))
    return validate_backlog(projects, homes)


def backlog_to_workbook(progress: BacklogProgress) -> Workbook:
    """Progress tables with Chinese headers (区、街乡、项目、受阻原因)."""
    wb = Workbook()
    wb.remove(wb.active)
    zh = {
        "project_id": "项目编号",
        "name": "项目名称",
        "district": "区",
        "street": "街乡",
        "projects": "项目数",
        "projects_done": "全部发证项目数",
        "homes": "套数",
        "issued": "已发证",
        "in_progress": "办理中",
        "blocked": "受阻",
        "issued_share": "发证率",
        "blocked_share": "受阻率",
        "synthetic": "合成数据",
        "block_reason": "受阻原因",
        "principle": "对应二十字工作法",
    }
    for title, df in (
        ("区汇总", progress.districts),
        ("街乡汇总", progress.streets),
        ("项目进度", progress.projects),
        ("受阻原因", progress.reasons),
    ):
        ws = wb.create_sheet(title)
        cols = list(df.columns)
        ws.append([zh.get(c, c) for c in cols])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in df.itertuples(index=False):
            ws.append(
                [
                    jsonable(v) if not isinstance(v, float) or not math.isnan(v) else None
                    for v in row
                ]
            )
        for j, c in enumerate(cols, start=1):
            if c.endswith("_share"):
                for r in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                    r[0].number_format = "0.0%"
    notes = wb.create_sheet("说明")
    notes.append(["历史遗留办证难项目进度" + ("(合成数据)" if progress.synthetic else "")])
    notes.append(
        [
            f"依据: {progress.totals['source']}"
            "(二十字工作法: 符合规划、楼宇安全、实测准确、名单合法、追责到底)"
        ]
    )
    return wb
