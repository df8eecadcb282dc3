"""Synthetic demo library (合成数据) placed inside Dongguan's real town boundaries.

:func:`build_demo_library` draws 大圈/中圈/连片工改工 zones and about 30 renewal units in four
real towns and gives them figures that, evaluated on :data:`DEMO_DATE`, produce every rule
outcome the pack can yield. Every size, share and date is derived from the policy pack
(threshold exactly, a little below, a little above), so the demo holds no policy number and
follows whatever pack it is given. Everything is labelled synthetic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry import box

from yizhangtu.errors import InputError, PolicyError
from yizhangtu.geo.area import AREA_UNITS, gk_zone_epsg, to_geographic
from yizhangtu.policy.loader import load_pack
from yizhangtu.policy.pack import PolicyPack, add_period
from yizhangtu.renewal.model import (
    BookedTask,
    RenewalLibrary,
    Stage,
    TownAccount,
    TownYearTask,
    unit_from_record,
)
from yizhangtu.renewal.rules import PARAM_UNITS, PARKING_RATE_BASE_M2, unit_bar_until
from yizhangtu.renewal.views import units_from_frame, zones_from_frame

__all__ = ["DEMO_DATE", "SYNTHETIC_LABEL", "DemoLibrary", "build_demo_library", "demo_library"]

#: Evaluation date on which the demo shows every outcome.
DEMO_DATE = date(2025, 6, 30)
SYNTHETIC_LABEL = "合成数据"

_MARGIN_M = 100.0  # gap between zones inside a 大圈, metres (layout only)
_N_HOLDERS = 25  # rights-holders in registry-based demo units


@dataclass(frozen=True)
class DemoLibrary:
    """The demo as frames, as a library, and the date to evaluate it on."""

    zones: gpd.GeoDataFrame
    units: gpd.GeoDataFrame
    library: RenewalLibrary
    at: date
    towns: dict[str, str]


class _Policy:
    """Pack values the demo derives its figures from."""

    def __init__(self, pack: PolicyPack) -> None:
        def get(name: str) -> Any:
            return pack.param(name, unit=PARAM_UNITS[name], at=DEMO_DATE)

        self.get = get
        self.mu = AREA_UNITS["mu"]
        self.consent = get("consent_share_min")
        self.signing = get("expropriation_signing_share_min")
        self.parking_min = get("parking_eligible_area_min")
        self.parking_rate = get("parking_rate")
        self.city_min = get("industry_city_area_min")
        self.cluster_min = get("industrial_cluster_area_min")
        self.zone_lo, self.zone_hi = get("priority_zone_area_min"), get("priority_zone_area_max")
        self.area_lo, self.area_hi = get("area_plan_area_min"), get("area_plan_area_max")
        self.elasticity = get("transmission_elasticity")
        self.acq = get("acquisition_deadline")
        self.acq_village = get("acquisition_deadline_old_village")
        self.supply = get("land_supply_deadline")
        self.bar = get("restart_bar_period")
        self.exemptions = get("deadline_exemption_reasons")
        self.reinvest = get("reinvestment_share_min")
        self.fiscal = get("fiscal_contribution_share_min")
        self.banking = get("land_banking_share_min")
        self.first_demo = get("industrial_cluster_first_demolition")
        self.completion = get("industrial_cluster_completion")
        self.tolerance = get("hierarchy_tolerance")
        coefs = get("balance_coefficient")
        self.coefs = coefs if isinstance(coefs, dict) else {"*": coefs}
        try:
            self.cap = get("unit_area_max")
        except PolicyError:
            self.cap = None

    def coef(self, mode: str) -> float | None:
        """Coefficient the pack sets for ``mode``."""
        return self.coefs.get(mode, self.coefs.get("*"))

    # typical unit sizes in 亩
    @property
    def mid_mu(self) -> float:
        """An ordinary unit: above the parking threshold."""
        return self.parking_min * 1.5

    @property
    def small_mu(self) -> float:
        """A small unit: below the parking threshold."""
        return self.parking_min * 0.6

    @property
    def big_mu(self) -> float:
        """A large unit: above the 产城融合 minimum."""
        return self.city_min * 1.15


def _years_before(d: date, years: int) -> date:
    return add_period(d, -years, "year")


def _months_before(d: date, months: int) -> date:
    return add_period(d, -months, "month")


# --------------------------------------------------------------------------- scenarios
# Each scenario: (key, role, parent, type, mode, size, stage, builder). The builder returns
# the record fields (figures and dates) relative to the pack and DEMO_DATE.

T = DEMO_DATE
Spec = dict[str, Any]


def _holders(n: int, yes: int, area_m2: float, signed: int = 0) -> list[dict[str, Any]]:
    each = area_m2 / n
    return [
        {
            "holder_id": f"H{i + 1:02d}",
            "land_area_m2": each,
            "heads": 1,
            "consented": i < yes,
            "signed": i < signed,
        }
        for i in range(n)
    ]


def _scenarios(p: _Policy) -> list[Spec]:
    n = _N_HOLDERS
    at_threshold = math.ceil(p.consent * n - 1e-9)
    c, s = p.consent, p.signing
    below = max(0.0, c - 0.03)
    acq_due = _years_before(T, p.acq)  # entity chosen on this day → due today
    sup_due = _months_before(T, p.supply)
    gov, open_, self_ = "政府主导", "公开招引实施主体", "权利人自行改造"
    ind, res, vil, town_c, city = "工改工", "工改居商", "旧村改造", "城镇社区", "产城融合"
    cap_big = p.cap * 1.2 if p.cap else p.mid_mu
    sc: list[Spec] = [
        # ---- town A, 中圈 A-1
        dict(
            key="A01",
            role="A",
            parent="A-1",
            type=ind,
            mode=gov,
            mu=p.mid_mu,
            stage="前期工作",
            scenario="意愿恰好达到门槛(人工填报), 可进入确认主体; 可适用停车折减",
            consent=(c, c),
            dates=dict(declared_on=T - timedelta(days=200)),
        ),
        dict(
            key="A02",
            role="A",
            parent="A-1",
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="确认主体",
            scenario="意愿由权益人名册计算; 收购期限未到; 财政贡献恰好达标; 停车位恰好达标",
            holders=at_threshold,
            fiscal="exact",
            parking="exact",
            dates=dict(
                declared_on=T - timedelta(days=300), entity_confirmed_on=T - timedelta(days=100)
            ),
        ),
        dict(
            key="A03",
            role="A",
            parent="A-1",
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="实施方案",
            scenario="实施方案已批, 供地期限将至(进入到期提醒); 财政贡献不足; 停车位不足",
            consent=(c, c),
            fiscal="below",
            parking="below",
            dates=dict(
                declared_on=T - timedelta(days=520),
                entity_confirmed_on=T - timedelta(days=400),
                acquisition_completed_on=T - timedelta(days=200),
                plan_approved_on=T - timedelta(days=40),
            ),
        ),
        dict(
            key="A05",
            role="A",
            parent="A-1",
            type=city,
            mode=gov,
            mu=p.big_mu,
            stage="前期工作",
            scenario="产城融合单元达到规模; 尚未录入意愿",
            dates=dict(declared_on=T - timedelta(days=30)),
        ),
        # ---- town A, 中圈 A-2
        dict(
            key="A04",
            role="A",
            parent="A-2",
            type=res,
            mode=self_,
            mu=p.small_mu,
            stage="开发监管",
            scenario="自行改造工改居商, 平衡系数正确, 按期供地",
            consent=(c, c),
            coef="right",
            land_price=2.4e8,
            dates=dict(
                declared_on=T - timedelta(days=700),
                entity_confirmed_on=T - timedelta(days=600),
                plan_approved_on=T - timedelta(days=300),
                land_supplied_on=T - timedelta(days=250),
            ),
        ),
        dict(
            key="A06",
            role="A",
            parent="A-2",
            type=ind,
            mode=self_,
            mu=p.small_mu,
            stage="实施方案",
            scenario="小于停车折减门槛却按折减标准配建; 供地逾期且无免责事由",
            consent=(c, c),
            parking="claimed",
            fiscal="exact",
            dates=dict(
                declared_on=T - timedelta(days=600),
                entity_confirmed_on=T - timedelta(days=520),
                plan_approved_on=sup_due - timedelta(days=10),
            ),
        ),
        dict(
            key="A07",
            role="A",
            parent="A-2",
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="确认主体",
            scenario="收购期限恰为今天",
            consent=(c, c),
            fiscal="exact",
            dates=dict(declared_on=acq_due - timedelta(days=60), entity_confirmed_on=acq_due),
        ),
        # ---- town A, 连片工改工片区 A-C
        dict(
            key="A08",
            role="A",
            parent="A-C",
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="确认主体",
            scenario="收购逾期且无免责事由, 应列入五年内不再重启",
            consent=(c, c),
            fiscal="exact",
            dates=dict(
                declared_on=acq_due - timedelta(days=100),
                entity_confirmed_on=acq_due - timedelta(days=40),
            ),
        ),
        dict(
            key="A09",
            role="A",
            parent="A-C",
            type=ind,
            mode=gov,
            mu=p.small_mu,
            stage="前期工作",
            scenario="意愿按人数未达门槛(面积已达)",
            consent=(c, below),
            dates=dict(declared_on=T - timedelta(days=91)),
        ),
        dict(
            key="A10",
            role="A",
            parent="A-Z",
            type=ind,
            mode=gov,
            mu=p.mid_mu,
            stage="前期工作",
            scenario="单元直接挂在大圈下, 层级不符",
            consent=(c, c),
            dates=dict(declared_on=T - timedelta(days=91)),
        ),
        # ---- town B, 中圈 B-1 (partly outside its 大圈)
        dict(
            key="B01",
            role="B",
            parent="B-1",
            type=res,
            mode=open_,
            mu=p.mid_mu,
            stage="确认主体",
            scenario="以挂账形式启动的工改居商; 平衡系数填错(用了自行改造的系数)",
            consent=(c, c),
            coef="wrong",
            land_price=1.8e8,
            dates=dict(
                declared_on=T - timedelta(days=400), entity_confirmed_on=T - timedelta(days=200)
            ),
        ),
        dict(
            key="B02",
            role="B",
            parent="B-1",
            type=res,
            mode=self_,
            mu=p.mid_mu,
            stage="前期工作",
            scenario="挂账未完成时申报的新工改居商单元; 意愿按面积未达门槛; 未填平衡系数",
            consent=(below, c),
            dates=dict(declared_on=T - timedelta(days=100)),
        ),
        dict(
            key="B03",
            role="B",
            parent="B-1",
            type=vil,
            mode=open_,
            mu=p.mid_mu,
            stage="确认主体",
            scenario=(
                "旧村改造为主, 收购期限放宽后未到期; 集体再投入恰为下限; 签约恰达征收门槛并申请征收"
            ),
            consent=(c, c),
            signing=(s, s),
            expropriation=True,
            reinvest="exact",
            dates=dict(
                declared_on=acq_due - timedelta(days=200),
                entity_confirmed_on=acq_due - timedelta(days=60),
            ),
        ),
        dict(
            key="B04",
            role="B",
            parent="B-1",
            type=res,
            mode=open_,
            mu=p.mid_mu,
            stage="确认主体",
            old_village_led=True,
            scenario="旧村改居商(不计入联动); 收购逾期但有免责事由; 签约未达门槛却申请征收",
            consent=(c, c),
            signing=(max(0.0, s - 0.02), s),
            expropriation=True,
            exemption=p.exemptions[-1],
            dates=dict(
                declared_on=_years_before(T, p.acq_village) - timedelta(days=300),
                entity_confirmed_on=_years_before(T, p.acq_village) - timedelta(days=30),
            ),
        ),
        # ---- town B, cluster B-C (too small)
        dict(
            key="B05",
            role="B",
            parent="B-C",
            type=ind,
            mode=gov,
            mu=p.mid_mu,
            stage="前期工作",
            scenario="名册计算与人工填报的意愿不一致(按名册); 镇街无财政基准线",
            holders=at_threshold - 2,
            consent=(min(1.0, c + 0.05), min(1.0, c + 0.05)),
            fiscal="exact",
            dates=dict(declared_on=T - timedelta(days=60)),
        ),
        # ---- town C, 中圈 C-1 (too large)
        dict(
            key="C01",
            role="C",
            parent="C-1",
            type=vil,
            mode=self_,
            mu=p.mid_mu,
            stage="开发监管",
            scenario="集体再投入不足; 供地晚于期限完成",
            consent=(c, c),
            reinvest="below",
            dates=dict(
                declared_on=T - timedelta(days=900),
                entity_confirmed_on=T - timedelta(days=800),
                plan_approved_on=T - timedelta(days=400),
                land_supplied_on=add_period(T - timedelta(days=400), p.supply, "month")
                + timedelta(days=21),
            ),
        ),
        dict(
            key="C03",
            role="C",
            parent="C-1",
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="暂停",
            suspended_from="确认主体",
            scenario="确认主体阶段暂停",
            consent=(c, c),
            fiscal="exact",
            dates=dict(
                declared_on=T - timedelta(days=300), entity_confirmed_on=T - timedelta(days=150)
            ),
        ),
        dict(
            key="C04",
            role="C",
            parent="C-1",
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="实施方案",
            scenario="处于实施方案但没有确认主体日期(数据不一致)",
            consent=(c, c),
            fiscal="exact",
            dates=dict(declared_on=T - timedelta(days=300)),
        ),
        dict(
            key="C05",
            role="C",
            parent="C-1",
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="开发监管",
            scenario="处于开发监管但实施方案未获批",
            consent=(c, c),
            fiscal="exact",
            dates=dict(
                declared_on=T - timedelta(days=520),
                entity_confirmed_on=T - timedelta(days=300),
                acquisition_completed_on=T - timedelta(days=100),
            ),
        ),
        dict(
            key="C06",
            role="C",
            parent="C-1",
            type=res,
            mode=open_,
            mu=p.mid_mu,
            stage="确认主体",
            scenario="已进入确认主体但意愿未达门槛",
            consent=(below, below),
            coef="right",
            land_price=1.5e8,
            dates=dict(
                declared_on=T - timedelta(days=300), entity_confirmed_on=T - timedelta(days=100)
            ),
        ),
        dict(
            key="C07",
            role="C",
            parent="C-1",
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="确认主体",
            place="outside",
            scenario="已进入确认主体但无意愿数据; 红线一半越出所属中圈",
            fiscal="exact",
            dates=dict(
                declared_on=T - timedelta(days=300), entity_confirmed_on=T - timedelta(days=100)
            ),
        ),
        dict(
            key="C08",
            role="C",
            parent="C-1",
            type=ind,
            mode=gov,
            mu=p.mid_mu,
            stage="前期工作",
            place="tolerance",
            scenario="红线越出中圈边界不足坐标容差, 视为在内",
            consent=(c, c),
            dates=dict(declared_on=T - timedelta(days=30)),
        ),
        dict(
            key="C11",
            role="C",
            parent="C-1",
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="实施方案",
            scenario="处于实施方案但公开招引的权益收购尚未完成",
            consent=(c, c),
            fiscal="exact",
            dates=dict(
                declared_on=T - timedelta(days=200), entity_confirmed_on=T - timedelta(days=120)
            ),
        ),
        # ---- town C, outside any zone
        dict(
            key="C09",
            role="C",
            parent=None,
            type=res,
            mode=open_,
            mu=p.big_mu,
            stage="前期工作",
            scenario="大圈以外的单元; 有集体收益但未填再投入",
            consent=(c, c),
            reinvest="missing",
            dates=dict(declared_on=T - timedelta(days=30)),
        ),
        dict(
            key="C10",
            role="C",
            parent=None,
            type=ind,
            mode=gov,
            mu=p.big_mu,
            stage="前期工作",
            scenario="大圈以外的单元; 尚未录入意愿",
            dates=dict(declared_on=T - timedelta(days=30)),
        ),
        # ---- town D, no zones
        dict(
            key="D01",
            role="D",
            parent=None,
            type=res,
            mode=open_,
            mu=p.mid_mu,
            stage="退出",
            scenario="收购逾期后退出; 五年内不能重启",
            consent=(c, c),
            dates=dict(
                declared_on=acq_due - timedelta(days=300),
                entity_confirmed_on=acq_due - timedelta(days=200),
            ),
            history=[
                ("前期工作", "确认主体", acq_due - timedelta(days=200)),
                ("确认主体", "退出", T - timedelta(days=30)),
            ],
        ),
        dict(
            key="D02",
            role="D",
            parent=None,
            type=ind,
            mode=open_,
            mu=p.mid_mu,
            stage="禁止重启",
            scenario="收购逾期已列入禁止重启",
            consent=(c, c),
            dates=dict(
                declared_on=_years_before(acq_due, 1) - timedelta(days=100),
                entity_confirmed_on=_years_before(acq_due, 1),
            ),
            bar="computed",
            history=[
                ("前期工作", "确认主体", _years_before(acq_due, 1)),
                ("确认主体", "禁止重启", T - timedelta(days=300)),
            ],
        ),
        dict(
            key="D03",
            role="D",
            parent=None,
            type=res,
            mode=self_,
            mu=p.mid_mu,
            stage="前期工作",
            scenario="禁止重启期届满后重启",
            barred_until=T - timedelta(days=10),
            dates=dict(declared_on=T - timedelta(days=5)),
            history=[("禁止重启", "前期工作", T - timedelta(days=5))],
        ),
        dict(
            key="D04",
            role="D",
            parent=None,
            type=ind,
            mode=gov,
            mu=cap_big,
            stage="前期工作",
            scenario="申请提请征收但没有签约数据; 面积超过小圈上限(若已设定)",
            expropriation=True,
            consent=(c, c),
            dates=dict(declared_on=T - timedelta(days=30)),
        ),
        dict(
            key="D05",
            role="D",
            parent=None,
            type=town_c,
            mode=gov,
            mu=cap_big,
            stage="前期工作",
            scenario="城镇社区面积超过小圈上限(可适当放宽)",
            dates=dict(declared_on=T - timedelta(days=30)),
        ),
        dict(
            key="D07",
            role="D",
            parent=None,
            type=city,
            mode=gov,
            mu=p.mid_mu,
            stage="前期工作",
            scenario="产城融合单元未达规模",
            dates=dict(declared_on=T - timedelta(days=30)),
        ),
        dict(
            key="D06",
            role="D",
            parent="ZZ-不存在",
            type=res,
            mode=open_,
            mu=p.mid_mu,
            stage="前期工作",
            scenario="所属中圈编号不存在",
            consent=(c, c),
            dates=dict(declared_on=T - timedelta(days=30)),
        ),
    ]
    return sc


# --------------------------------------------------------------------------- geometry


def _square(cx: float, cy: float, area_m2: float) -> shapely.Polygon:
    h = math.sqrt(area_m2) / 2
    return box(cx - h, cy - h, cx + h, cy + h)


def _find_spot(
    geom: Any, half: float, rng: np.random.Generator, avoid: Any = None, tries: int = 400
) -> tuple[float, float] | None:
    inner = shapely.buffer(geom, -half * math.sqrt(2))
    if inner.is_empty:
        return None
    minx, miny, maxx, maxy = inner.bounds
    for _ in range(tries):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if not inner.contains(shapely.Point(x, y)):
            continue
        if avoid is not None and _square(x, y, (2 * half) ** 2).intersects(avoid):
            continue
        return x, y
    return None


def _grid_cells(parent: shapely.Polygon, count: int) -> list[tuple[float, float, float]]:
    minx, miny, maxx, _maxy = parent.bounds
    k = max(1, math.ceil(math.sqrt(count)))
    w = (maxx - minx) / k
    return [
        (minx + (2 * (i % k) + 1) * w / 2, miny + (2 * (i // k) + 1) * w / 2, w)
        for i in range(k * k)
    ]


def _layout(
    towns_m: gpd.GeoDataFrame, p: _Policy, rng: np.random.Generator
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Pick four towns and draw the zones (metric CRS). Returns roles and zone specs."""
    km2 = AREA_UNITS["km2"]
    s_a = math.sqrt(p.zone_hi * 0.9 * km2)  # 大圈 A side
    s_b = math.sqrt(p.zone_lo * 0.6 * km2)  # 大圈 B: below the minimum
    s_c = math.sqrt((p.zone_lo + p.zone_hi) / 2 * km2)
    names = sorted(towns_m["name"])
    order = list(rng.permutation(len(names)))
    geom_of = dict(zip(towns_m["name"], towns_m.geometry, strict=True))
    roles: dict[str, str] = {}
    spots: dict[str, tuple[float, float]] = {}
    for role, side in (("A", s_a), ("B", s_b), ("C", s_c), ("D", 0.0)):
        for i in order:
            name = names[i]
            if name in roles.values():
                continue
            g = geom_of[name]
            if role == "D":
                if g.area > (4 * math.sqrt(p.big_mu * p.mu) + 2 * _MARGIN_M) ** 2:
                    roles[role] = name
                    break
                continue
            spot = _find_spot(g, side / 2 + _MARGIN_M, rng)
            if spot is not None and (role != "C" or g.area > 4 * side * side):
                roles[role] = name
                spots[role] = spot
                break
        else:
            raise InputError(
                f"镇街边界中找不到可放置演示{role}区的镇街",
                key="demo_no_room",
                hint="传入东莞33个镇街边界",
            )
    zones: dict[str, dict[str, Any]] = {}

    def origin(role: str, side: float) -> tuple[float, float]:
        cx, cy = spots[role]
        return cx - side / 2, cy - side / 2

    m = _MARGIN_M
    area_mid = (p.area_lo + p.area_hi) / 2 * km2
    # town A: normal 大圈, normal 中圈 A-1, smaller 中圈 A-2, cluster A-C above the minimum
    x0, y0 = origin("A", s_a)
    zones["A-Z"] = dict(tier="大圈", town=roles["A"], geom=box(x0, y0, x0 + s_a, y0 + s_a))
    s1 = math.sqrt(area_mid)
    zones["A-1"] = dict(
        tier="中圈",
        parent="A-Z",
        town=roles["A"],
        geom=box(x0 + m, y0 + m, x0 + m + s1, y0 + m + s1),
    )
    s2 = math.sqrt(p.area_lo * 1.2 * km2)
    zones["A-2"] = dict(
        tier="中圈",
        parent="A-Z",
        town=roles["A"],
        geom=box(x0 + m, y0 + 2 * m + s1, x0 + m + s2, y0 + 2 * m + s1 + s2),
    )
    sc = math.sqrt(p.cluster_min * 1.2 * p.mu)
    zones["A-C"] = dict(
        tier="连片工改工片区",
        parent="A-Z",
        town=roles["A"],
        geom=box(x0 + 2 * m + s1, y0 + m, x0 + 2 * m + s1 + sc, y0 + m + sc),
        started_on=_years_before(T, p.first_demo) - timedelta(days=21),
    )
    # town B: 大圈 below the minimum, 中圈 B-1 sticking out of it, cluster B-C below the minimum
    x0, y0 = origin("B", s_b)
    zones["B-Z"] = dict(tier="大圈", town=roles["B"], geom=box(x0, y0, x0 + s_b, y0 + s_b))
    out_x = x0 + s_b - s1 * 0.65
    zones["B-1"] = dict(
        tier="中圈", parent="B-Z", town=roles["B"], geom=box(out_x, y0 + m, out_x + s1, y0 + m + s1)
    )
    sbc = math.sqrt(p.cluster_min * 0.6 * p.mu)
    start_b = _years_before(T, p.completion) - timedelta(days=100)
    zones["B-C"] = dict(
        tier="连片工改工片区",
        parent="B-Z",
        town=roles["B"],
        geom=box(x0 + m, y0 + m, x0 + m + sbc, y0 + m + sbc),
        started_on=start_b,
        first_demolition_on=start_b + timedelta(days=200),
        completed_on=T - timedelta(days=10),
    )
    # town C: normal 大圈, 中圈 C-1 above the maximum
    x0, y0 = origin("C", s_c)
    zones["C-Z"] = dict(tier="大圈", town=roles["C"], geom=box(x0, y0, x0 + s_c, y0 + s_c))
    s3 = math.sqrt(p.area_hi * 1.2 * km2)
    zones["C-1"] = dict(
        tier="中圈",
        parent="C-Z",
        town=roles["C"],
        geom=box(x0 + m, y0 + m, x0 + m + s3, y0 + m + s3),
    )
    return roles, zones


def _build(
    towns: gpd.GeoDataFrame, seed: int, pack: PolicyPack | str
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, tuple[TownAccount, ...], dict[str, str]]:
    pk = load_pack(pack) if isinstance(pack, str) else pack
    p = _Policy(pk)
    if "name" not in towns.columns or len(towns) < 4:
        raise InputError("镇街图层须有 name 字段且至少 4 个镇街", key="demo_towns", field="name")
    geo = to_geographic(towns.geometry)
    lon = float(np.mean(geo.total_bounds[[0, 2]]))
    metric = CRS.from_epsg(int(gk_zone_epsg(lon)))
    towns_m = gpd.GeoDataFrame(
        {"name": towns["name"].astype(str).to_numpy()},
        geometry=geo.to_crs(metric).values,
        crs=metric,
    )
    rng = np.random.default_rng(seed)
    roles, zspec = _layout(towns_m, p, rng)
    scen = _scenarios(p)

    # ---- units: geometry
    by_parent: dict[str | None, list[Spec]] = {}
    for s in scen:
        by_parent.setdefault(s["parent"] if s["parent"] in zspec else None, []).append(s)
    geoms: dict[str, Any] = {}
    for parent, specs in by_parent.items():
        if parent is None:
            continue
        pg = zspec[parent]["geom"]
        inner = [s for s in specs if s.get("place") not in ("outside", "tolerance")]
        cells = _grid_cells(pg, len(specs) if zspec[parent]["tier"] != "大圈" else 1)
        if zspec[parent]["tier"] == "大圈":
            _minx, _miny, maxx, maxy = pg.bounds
            for s in specs:
                half = math.sqrt(s["mu"] * p.mu) / 2
                geoms[s["key"]] = _square(
                    maxx - _MARGIN_M - half, maxy - _MARGIN_M - half, s["mu"] * p.mu
                )
            continue
        for s, (cx, cy, _w) in zip(inner, cells, strict=False):
            geoms[s["key"]] = _square(cx, cy, s["mu"] * p.mu)
        minx, _miny, maxx, _maxy = pg.bounds
        for s in specs:
            half = math.sqrt(s["mu"] * p.mu) / 2
            cy = cells[-1][1]
            if s.get("place") == "outside":
                geoms[s["key"]] = _square(maxx, cy, s["mu"] * p.mu)
            elif s.get("place") == "tolerance":
                geoms[s["key"]] = _square(minx + half - p.tolerance / 2, cy, s["mu"] * p.mu)
    town_geom = dict(zip(towns_m["name"], towns_m.geometry, strict=True))
    for s in by_parent.get(None, []):
        town = roles[s["role"]]
        avoid = shapely.union_all([z["geom"] for z in zspec.values()] + list(geoms.values()))
        half = math.sqrt(s["mu"] * p.mu) / 2
        spot = _find_spot(
            town_geom[town], half + _MARGIN_M, rng, avoid=shapely.buffer(avoid, _MARGIN_M)
        )
        if spot is None:
            raise InputError(f"{town}没有空间放置演示单元 {s['key']}", key="demo_no_room")
        geoms[s["key"]] = _square(spot[0], spot[1], s["mu"] * p.mu)

    # ---- units: records
    records = []
    for s in scen:
        records.append(_record(s, roles, p, pk))
    units_m = gpd.GeoDataFrame(records, geometry=[geoms[s["key"]] for s in scen], crs=metric)

    # ---- zones: planned scale (transmission elasticity) and records
    land = {r["area_id"]: 0.0 for r in records}
    for r in records:
        if r["stage"] != Stage.WITHDRAWN.value:
            land[r["area_id"]] = land.get(r["area_id"], 0.0) + r["land_area_m2"]
    e = p.elasticity
    planned = {
        "A-1": land.get("A-1", 0.0) / (1 + e / 2),  # uses the elasticity
        "A-2": land.get("A-2", 0.0) / (1 + 2 * e),  # exceeds it
        "C-1": land.get("C-1", 0.0) * 2,  # within
    }
    planned["A-Z"] = planned["A-1"] + planned["A-2"]
    zrows = []
    for zid, z in zspec.items():
        zrows.append(
            {
                "zone_id": zid,
                "tier": z["tier"],
                "name": f"{SYNTHETIC_LABEL}·{z['town']}{z['tier']}{zid}",
                "town": z["town"],
                "parent_id": z.get("parent"),
                "planned_scale_m2": planned.get(zid),
                "started_on": z.get("started_on"),
                "first_demolition_on": z.get("first_demolition_on"),
                "completed_on": z.get("completed_on"),
                "synthetic": True,
                "geometry": z["geom"],
            }
        )
    zones_m = gpd.GeoDataFrame(zrows, geometry="geometry", crs=metric)
    out_crs = towns.crs
    zones_out = zones_m.to_crs(out_crs)
    units_out = units_m.to_crs(out_crs)
    zones_out.attrs["synthetic"] = True
    units_out.attrs["synthetic"] = True
    accounts = _accounts(roles, records, p)
    return zones_out, units_out, accounts, roles


def _record(s: Spec, roles: dict[str, str], p: _Policy, pack: PolicyPack) -> dict[str, Any]:
    area = s["mu"] * p.mu
    uid = f"DEMO-{s['key']}"
    rec: dict[str, Any] = {
        "unit_id": uid,
        "name": f"{SYNTHETIC_LABEL}·{roles[s['role']]}单元{s['key']}",
        "town": roles[s["role"]],
        "unit_type": s["type"],
        "mode": s["mode"],
        "land_area_m2": area,
        "stage": s["stage"],
        "area_id": s["parent"],
        "old_village_led": bool(s.get("old_village_led", False)),
        "deadline_exemption": s.get("exemption"),
        "expropriation_requested": bool(s.get("expropriation", False)),
        "suspended_from": s.get("suspended_from"),
        "barred_until": s.get("barred_until"),
        "synthetic": True,
        "version": 0,
        "scenario": s["scenario"],
    }
    dates = dict(s.get("dates", {}))
    for k in (
        "declared_on",
        "entity_confirmed_on",
        "acquisition_completed_on",
        "plan_approved_on",
        "land_supplied_on",
        "first_demolition_on",
        "completed_on",
    ):
        rec[k] = dates.get(k)
    hist = s.get("history") or []
    rec["stage_since"] = hist[-1][2] if hist else max(d for d in dates.values() if d is not None)
    if hist:
        rec["history"] = json.dumps(
            [
                {"from": a, "to": b, "at": d.isoformat(), "note": SYNTHETIC_LABEL}
                for a, b, d in hist
            ],
            ensure_ascii=False,
        )
    else:
        rec["history"] = None
    for kind in ("consent", "signing"):
        fig = s.get(kind)
        rec[f"{kind}_area_share"] = fig[0] if fig else None
        rec[f"{kind}_head_share"] = fig[1] if fig else None
        rec[f"{kind}_as_of"] = None
    if "holders" in s:
        rec["holders"] = json.dumps(_holders(_N_HOLDERS, s["holders"], area), ensure_ascii=False)
    else:
        rec["holders"] = None
    # money
    rec["land_price_yuan"] = s.get("land_price")
    coef = p.coef(s["mode"])
    if s.get("coef") == "right":
        rec["balance_coefficient"] = coef
    elif s.get("coef") == "wrong":
        others = [v for k, v in p.coefs.items() if k != s["mode"]]
        rec["balance_coefficient"] = others[0] if others else (coef or 1.0) * 2
    else:
        rec["balance_coefficient"] = None
    revenue = 3.0e8
    if s.get("reinvest") == "exact":
        rec["collective_revenue_yuan"] = revenue
        rec["collective_reinvested_yuan"] = revenue * p.reinvest
    elif s.get("reinvest") == "missing":
        rec["collective_revenue_yuan"] = revenue
        rec["collective_reinvested_yuan"] = None
    elif s.get("reinvest") == "below":
        rec["collective_revenue_yuan"] = revenue
        rec["collective_reinvested_yuan"] = revenue * p.reinvest * 0.6
    else:
        rec["collective_revenue_yuan"] = None
        rec["collective_reinvested_yuan"] = None
    baseline = _FISCAL_BASELINE
    rec["fiscal_contribution"] = (
        baseline * p.fiscal
        if s.get("fiscal") == "exact"
        else baseline * p.fiscal * 0.6
        if s.get("fiscal") == "below"
        else None
    )
    floor = area * 1.5
    spaces = math.ceil(floor / PARKING_RATE_BASE_M2 * p.parking_rate - 1e-9)
    if s.get("parking") in ("exact", "claimed"):
        rec["floor_area_m2"], rec["parking_spaces"] = floor, spaces
    elif s.get("parking") == "below":
        rec["floor_area_m2"], rec["parking_spaces"] = floor, max(0, spaces - 3)
    else:
        rec["floor_area_m2"], rec["parking_spaces"] = None, None
    if s.get("bar") == "computed":
        probe = unit_from_record({**rec, "stage": "确认主体", "history": None, "stage_since": None})
        rec["barred_until"] = unit_bar_until(probe, pack, DEMO_DATE)
    return rec


_FISCAL_BASELINE = 60.0  # synthetic town baseline (万元/亩·年)


def _accounts(
    roles: dict[str, str], records: list[dict[str, Any]], p: _Policy
) -> tuple[TownAccount, ...]:
    km = 1.0e6
    year = DEMO_DATE.year
    booked_unit = next(r["unit_id"] for r in records if r["unit_id"].endswith("B01"))
    booked_on = min(
        d
        for d in (r["declared_on"] for r in records if r["unit_id"].endswith("B01"))
        if d is not None
    )
    return (
        TownAccount(
            town=roles["A"],
            fiscal_baseline=_FISCAL_BASELINE,
            tasks=(TownYearTask(year, 2 * km, 2 * km * p.banking),),
            synthetic=True,
        ),
        TownAccount(
            town=roles["B"],
            booked=(BookedTask(booked_unit, booked_on, None, 0.3 * km),),
            tasks=(TownYearTask(year, 2 * km, 2 * km * p.banking * 0.6),),
            synthetic=True,
        ),
        TownAccount(
            town=roles["C"],
            fiscal_baseline=_FISCAL_BASELINE,
            tasks=(TownYearTask(year - 1, 2 * km, 2 * km * p.banking, 2 * km * p.banking * 0.45),),
            synthetic=True,
        ),
        TownAccount(
            town=roles["D"],
            fiscal_baseline=_FISCAL_BASELINE,
            linkage_alternative=f"闲置用地盘活({SYNTHETIC_LABEL})",
            synthetic=True,
        ),
    )


def build_demo_library(
    towns: gpd.GeoDataFrame, seed: int = 0, pack: PolicyPack | str = "dongguan-2023"
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Synthetic zones and about 30 units inside real towns (合成数据).

    Parameters
    ----------
    towns : GeoDataFrame
        Town boundaries with a ``name`` column (e.g. Dongguan's 33 towns).
    seed : int
        Seed for choosing towns and positions.
    pack : PolicyPack or str
        Pack whose thresholds the figures are derived from.

    Returns
    -------
    zones, units : GeoDataFrame
        In the towns' CRS; ``synthetic`` is True on every row; units carry flat records
        (see :func:`~yizhangtu.renewal.model.unit_to_record`) and a ``scenario`` text.
    """
    zones, units, *_rest = _build(towns, seed, pack)
    return zones, units


def demo_library(
    towns: gpd.GeoDataFrame, seed: int = 0, pack: PolicyPack | str = "dongguan-2023"
) -> DemoLibrary:
    """Build the demo as frames plus a :class:`RenewalLibrary` with town accounts, and its date."""
    zones, units, accounts, roles = _build(towns, seed, pack)
    lib = RenewalLibrary(
        units=units_from_frame(units), zones=zones_from_frame(zones), towns=accounts
    )
    return DemoLibrary(zones=zones, units=units, library=lib, at=DEMO_DATE, towns=roles)
