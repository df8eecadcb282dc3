"""Synthetic rights registries and certificate backlog for the demo (合成数据).

:func:`demo_registry` draws parcels inside given renewal units and gives each unit holders
and records whose computed consent or signing share sits exactly on a target (e.g. just
below and exactly at the pack thresholds). Every registry has a holder with two parcels, a
shared parcel, a holder abroad who agreed through the 004 (十六) procedure and a holder
whose whereabouts are unknown (kept in the denominator). ID numbers are synthetic but
checksum-valid (GB 11643) so that imports accept them; everything is labelled synthetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry import box

from yizhangtu.errors import InputError
from yizhangtu.geo.area import gk_zone_epsg, to_geographic
from yizhangtu.rights.backlog import CertStatus, _vocab, block_reasons
from yizhangtu.rights.ids import credit_code_check_char, id_check_char, mask_id, mask_phone
from yizhangtu.rights.model import (
    AgreementRecord,
    Compensation,
    Holder,
    HolderKind,
    HolderStatus,
    Parcel,
    RecordKind,
    Registry,
    RightsType,
    Share,
    Transfer,
)
from yizhangtu.rights.protect import PIICipher

__all__ = [
    "DemoTarget",
    "SyntheticPerson",
    "demo_backlog",
    "demo_registry",
    "synthetic_credit_code",
    "synthetic_id_number",
]

SYNTHETIC_LABEL = "合成数据"
_SURNAMES = "陈李黄张梁林何罗叶刘袁邓卢钟蔡谢"


def synthetic_id_number(rng: np.random.Generator, address: str = "441900") -> str:
    """Return a synthetic, checksum-valid 18-digit citizen ID (GB 11643)."""
    born = date(1950, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 50)))
    body = f"{address}{born:%Y%m%d}{int(rng.integers(0, 1000)):03d}"
    return body + id_check_char(body)


def synthetic_credit_code(rng: np.random.Generator) -> str:
    """Return a synthetic, checksum-valid unified social credit code (GB 32100)."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    body = "54" + "441900" + "".join(alphabet[int(i)] for i in rng.integers(0, 31, 9))
    return body + credit_code_check_char(body)


@dataclass(frozen=True)
class SyntheticPerson:
    """Plain numbers of a synthetic holder, kept only to build rosters and test masking."""

    holder_id: str
    id_number: str
    phone: str


@dataclass(frozen=True)
class DemoTarget:
    """What a unit's registry should yield.

    ``kind`` share ``area_share`` by area and ``heads_yes`` of ``heads`` holders by head.
    """

    unit_id: str
    kind: Literal["consent", "signing"]
    area_share: float
    heads_yes: int
    heads: int = 20


def _strips(geom: Any, crs: Any, weights: list[float]) -> list[Any]:
    """Cut a polygon into vertical strips with areas proportional to ``weights``."""
    gs = to_geographic(gpd.GeoSeries([geom], crs=crs))
    lon = float(gs.iloc[0].centroid.x)
    metric = CRS.from_epsg(int(gk_zone_epsg(lon)))
    g = gs.to_crs(metric).iloc[0]
    minx, miny, maxx, maxy = g.bounds
    total = sum(weights)
    out, x = [], minx
    for w in weights:
        x1 = x + (maxx - minx) * w / total
        out.append(shapely.intersection(g, box(x, miny, x1, maxy)))
        x = x1
    return list(gpd.GeoSeries(out, crs=metric).to_crs(crs).values)


def demo_registry(
    units: gpd.GeoDataFrame,
    targets: list[DemoTarget],
    cipher: PIICipher,
    at: date,
    *,
    procedure_abroad: str,
    seed: int = 0,
) -> tuple[Registry, list[SyntheticPerson]]:
    """Build a synthetic registry for the target units.

    Parameters
    ----------
    units : GeoDataFrame
        Units with ``unit_id``, ``town``, ``land_area_m2`` and geometry (CRS set).
    targets : list of DemoTarget
        Shares to reach exactly.
    cipher : PIICipher
        Protects the synthetic ID and phone numbers.
    at : date
        Records are dated before it.
    procedure_abroad : str
        Procedure named on the abroad holder's records (from the rights pack).

    Returns
    -------
    (Registry, list of SyntheticPerson)
        The registry (CRS of ``units``) and the plain synthetic numbers (tests only).
    """
    rng = np.random.default_rng(seed)
    by_id = {str(r["unit_id"]): r for _, r in units.iterrows()}
    parcels: list[Parcel] = []
    holders: list[Holder] = []
    shares: list[Share] = []
    records: list[AgreementRecord] = []
    transfers: list[Transfer] = []
    comps: list[Compensation] = []
    people: list[SyntheticPerson] = []
    types = ("集体经营性建设用地使用权", "国有建设用地使用权", "宅基地使用权")
    for t_i, t in enumerate(targets):
        if t.unit_id not in by_id:
            raise InputError(
                f"演示单元 {t.unit_id} 不存在", key="demo_unit_missing", feature=t.unit_id
            )
        if not 3 <= t.heads_yes <= t.heads - (2 if t.kind == "consent" else 1):
            raise InputError(
                "演示目标的同意(签约)人数须不少于 3 人且留出未同意的权益人",
                key="demo_target",
                feature=t.unit_id,
            )
        u = by_id[t.unit_id]
        short = t.unit_id.replace("DEMO-", "")
        total = round(float(u["land_area_m2"]) / 100) * 100
        yes_area = t.area_share * total
        k, n = t.heads_yes, t.heads
        a, b = yes_area / k, (total - yes_area) / (n - k)
        hids = [f"{short}-H{i + 1:02d}" for i in range(n)]
        # parcels: (code, area, [(holder, share)], rights type)
        plan: list[tuple[str, float, list[tuple[str, float]], str]] = []
        plan.append((f"{short}-P01A", a / 2, [(hids[0], 1.0)], types[2]))
        plan.append((f"{short}-P01B", a / 2, [(hids[0], 1.0)], types[2]))
        plan.append((f"{short}-P02", 2 * a, [(hids[1], 0.5), (hids[2], 0.5)], types[0]))
        for i in range(3, k):
            plan.append((f"{short}-P{i:02d}", a, [(hids[i], 1.0)], types[i % 3]))
        for i in range(k, n):
            rtype = "土地承包经营权" if i == n - 1 else types[i % 3]
            plan.append((f"{short}-P{i:02d}", b, [(hids[i], 1.0)], rtype))
        # exact group sums: the last parcel of each group takes the rounding remainder
        yes_n = k  # parcels of the yes group: P01A, P01B, P02 and one per other holder
        rounded = [round(p[1], 2) for p in plan]
        rounded[yes_n - 1] = yes_area - sum(rounded[: yes_n - 1])
        rounded[-1] = total - yes_area - sum(rounded[yes_n:-1])
        geoms = _strips(u.geometry, units.crs, rounded)
        for (code, _area, owners, rtype), area, g in zip(plan, rounded, geoms, strict=True):
            parcels.append(
                Parcel(
                    parcel_code=code,
                    rights_type=RightsType(rtype),
                    registered_area_m2=area,
                    certificate_no=(
                        f"粤({at.year - 3})东莞市不动产权第"
                        f"{int(rng.integers(1_000_000, 10_000_000))}号(合成)"
                    ),
                    town=str(u["town"]),
                    geometry=g,
                    synthetic=True,
                )
            )
            shares += [Share(code, h, s) for h, s in owners]
        abroad, missing = hids[k - 1], hids[k]
        for i, hid in enumerate(hids):
            org = i == 3
            status = (
                HolderStatus.ABROAD
                if hid == abroad
                else HolderStatus.MISSING
                if hid == missing
                else HolderStatus.NORMAL
            )
            pid = synthetic_credit_code(rng) if org else synthetic_id_number(rng)
            phone = f"1380000{int(rng.integers(0, 10000)):04d}"
            people.append(SyntheticPerson(hid, pid, phone))
            holders.append(
                Holder(
                    holder_id=hid,
                    name=(
                        f"{SYNTHETIC_LABEL}·{short}股份经济合作社"
                        if org
                        else f"{_SURNAMES[(i + t_i) % 16]}某{i + 1:02d}"
                    ),
                    kind=HolderKind.ORGANISATION if org else HolderKind.PERSON,
                    status=status,
                    id_number=cipher.protect(pid, mask_id),
                    phone=None if hid == missing else cipher.protect(phone, mask_phone),
                    note=SYNTHETIC_LABEL,
                    synthetic=True,
                )
            )
        d_consent = at - timedelta(days=120 + t_i)
        d_sign = at - timedelta(days=30 + t_i)

        def rec(
            hid: str, kind: str, on: date, short: str = short, unit_id: str = t.unit_id, **kw: Any
        ) -> None:
            seq = sum(1 for r in records if r.unit_id == unit_id) + 1
            records.append(
                AgreementRecord(
                    record_id=f"{short}-R{seq:03d}",
                    holder_id=hid,
                    unit_id=unit_id,
                    kind=RecordKind(kind),
                    on=on,
                    evidence=f"{short}-{'YY' if kind == '意愿' else 'XY'}-{seq:03d}(合成)",
                    synthetic=True,
                    **kw,
                )
            )

        via = {"via_procedure": procedure_abroad}
        if t.kind == "consent":
            rec(hids[0], "意愿", d_consent, parcel_code=f"{short}-P01A")
            rec(hids[0], "意愿", d_consent, parcel_code=f"{short}-P01B")
            for hid in hids[1:k]:
                rec(hid, "意愿", d_consent, **(via if hid == abroad else {}))
            # a consent given and withdrawn before the evaluation date does not count
            rec(hids[k + 1], "意愿", d_consent, status="撤回", withdrawn_on=d_sign)
        else:
            for hid in hids:
                if hid != missing:
                    rec(hid, "意愿", d_consent, **(via if hid == abroad else {}))
            for i, hid in enumerate(hids[:k]):
                rec(hid, "签约", d_sign, **(via if hid == abroad else {}))
                comps.append(
                    Compensation(
                        record_id=f"{short}-C{i + 1:03d}",
                        holder_id=hid,
                        unit_id=t.unit_id,
                        amount_yuan=round(float(rng.uniform(3000, 6000)) * a, -2),
                        resettlement="产权调换" if i % 2 else "货币补偿",
                        resettlement_area_m2=round(a * 0.8, 1) if i % 2 else None,
                        on=d_sign,
                        status="已签订",
                        synthetic=True,
                    )
                )
        transfers.append(
            Transfer(
                transfer_id=f"{short}-T01",
                parcel_code=f"{short}-P{n - 1:02d}",
                transferor_id=hids[n - 1],
                transferee=f"{SYNTHETIC_LABEL}·{u['town']}农业发展有限公司",
                mode="出租",
                start_on=date(at.year - 4, 1, 1),
                end_on=date(at.year + 6, 12, 31),
                synthetic=True,
            )
        )
    reg = Registry(
        parcels=tuple(parcels),
        holders=tuple(holders),
        shares=tuple(shares),
        records=tuple(records),
        transfers=tuple(transfers),
        compensations=tuple(comps),
        crs=units.crs,
    )
    return reg, people


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` summing exactly to ``total`` (largest remainder)."""
    raw = weights / weights.sum() * total
    base = np.floor(raw).astype(int)
    rest = total - int(base.sum())
    order = np.argsort(-(raw - base))
    base[order[:rest]] += 1
    return base


def demo_backlog(
    streets: list[str], seed: int = 0, counts: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic certificate-backlog projects and homes (order of magnitude of 002 一(二)六).

    Returns ``projects`` (project_id, name, district, street, homes, synthetic) and
    ``homes`` (project_id, home_id, status, block_reason).
    """
    demo = dict(_vocab()["demo"])
    demo.update(counts or {})
    n_proj, n_homes, district = int(demo["projects"]), int(demo["homes"]), str(demo["district"])
    if not streets:
        raise InputError("需要至少一个街乡名称", key="demo_streets")
    rng = np.random.default_rng(seed)
    sizes = _allocate(n_homes, rng.lognormal(mean=0.0, sigma=0.7, size=n_proj))
    reasons = [r["label"] for r in block_reasons() if r["code"] != "other"]
    projects, homes = [], []
    for i, size in enumerate(sizes):
        pid = f"BZ{i + 1:03d}"
        street = streets[int(rng.integers(0, len(streets)))]
        projects.append(
            {
                "project_id": pid,
                "name": f"{SYNTHETIC_LABEL}·{street}历史遗留项目{i + 1:02d}",
                "district": district,
                "street": street,
                "homes": int(size),
                "synthetic": True,
            }
        )
        issued_share = float(rng.beta(8, 2)) if i % 11 else 1.0
        blocked_share = float(rng.uniform(0, 0.08)) * (1 - issued_share)
        statuses = rng.choice(
            [CertStatus.ISSUED.value, CertStatus.IN_PROGRESS.value, CertStatus.BLOCKED.value],
            size=int(size),
            p=_probs(issued_share, blocked_share),
        )
        why = rng.choice(reasons, size=int(size))
        homes.append(
            pd.DataFrame(
                {
                    "project_id": pid,
                    "home_id": [f"{pid}-{j + 1:05d}" for j in range(int(size))],
                    "status": statuses,
                    "block_reason": pd.Series(why).where(statuses == CertStatus.BLOCKED.value),
                }
            )
        )
    return pd.DataFrame(projects), pd.concat(homes, ignore_index=True)


def _probs(issued: float, blocked: float) -> list[float]:
    blocked = max(0.0, min(blocked, 1 - issued))
    rest = max(0.0, 1.0 - issued - blocked)
    p = np.array([issued, rest, blocked])
    return list(p / p.sum()) if math.isfinite(p.sum()) and p.sum() > 0 else [1.0, 0.0, 0.0]
