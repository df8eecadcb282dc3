"""Multi-criteria scoring of sites: weighted sum or TOPSIS, ranks, sensitivity, recommendation.

Weighted sum
    ``S_i = Σ_j w_j · n_ij`` with ``n_ij`` the normalised value (larger is better).
TOPSIS (Hwang & Yoon 1981)
    vector normalisation ``r_ij = x_ij / sqrt(Σ_i x_ij²)``, weighted ``v_ij = w_j r_ij``; the
    ideal point takes the best ``v`` per criterion (max for benefit, min for cost), the
    anti-ideal the worst; ``C_i = D_i⁻ / (D_i⁺ + D_i⁻)`` with Euclidean distances. TOPSIS uses
    its own vector normalisation; the configured normalisation only feeds the report columns.
Sensitivity
    each weight in turn is multiplied by ``1 ± step`` (step from ``data/ahp.yaml``, 10%), all
    weights are renormalised to sum 1, and the ranks are recomputed; a site "keeps its rank"
    when its rank is unchanged under every such perturbation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from yizhangtu.errors import InputError, ValidationError
from yizhangtu.scoring._data import load_packaged_yaml
from yizhangtu.scoring.ahp import AHPResult, ahp_constants, ahp_matrix_from_pairs, ahp_weights
from yizhangtu.scoring.criteria import (
    METHODS,
    NORMALISATIONS,
    RecommendationRules,
    ScoringConfig,
    parse_recommendation_rules,
)
from yizhangtu.scoring.normalize import normalise, normalise_frame
from yizhangtu.scoring.values import raw_values

__all__ = [
    "ScoringResult",
    "default_recommendation_rules",
    "rank_scores",
    "recommend",
    "resolve_weights",
    "score_sites",
    "sensitivity_analysis",
    "topsis",
    "weighted_sum",
]


@dataclass(frozen=True, eq=False)
class ScoringResult:
    """Everything a scoring run produced.

    Attributes
    ----------
    table : DataFrame
        One row per site (index ``site_id``): ``name``, ``score``, ``rank``, ``phase``,
        ``period``, ``mode``, ``mode_text``, ``rank_stable``.
    raw, normalised, contributions : DataFrame
        Site × criterion: raw values, normalised values, and ``w_j · n_ij`` (weighted sum) or
        ``w_j · r_ij`` (TOPSIS weighted vector-normalised values).
    sensitivity : DataFrame
        Long table: ``criterion``, ``change``, ``site_id``, ``base_rank``, ``new_rank``,
        ``rank_kept``.
    """

    config: ScoringConfig
    method: str
    normalisation: str
    weights: Mapping[str, float]
    ahp: AHPResult | None
    raw: pd.DataFrame
    normalised: pd.DataFrame
    contributions: pd.DataFrame
    table: pd.DataFrame
    sensitivity: pd.DataFrame
    warnings: tuple[str, ...]
    metric_epsg: int | None
    rules: RecommendationRules

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result (per site: score, rank, phase, mode, criterion values)."""
        sites = []
        for sid, row in self.table.iterrows():
            sites.append(
                {
                    "site_id": sid,
                    "name": row["name"],
                    "score": float(row["score"]),
                    "rank": int(row["rank"]),
                    "phase": row["phase"],
                    "mode": row["mode"],
                    "rank_stable": bool(row["rank_stable"]),
                    "criteria": {
                        c.name: {
                            "label": c.label,
                            "raw": _jsonnum(self.raw.at[sid, c.name]),
                            "normalised": _jsonnum(self.normalised.at[sid, c.name]),
                            "contribution": _jsonnum(self.contributions.at[sid, c.name]),
                        }
                        for c in self.config.criteria
                    },
                }
            )
        return {
            "title": self.config.title,
            "synthetic": self.config.synthetic,
            "method": self.method,
            "normalisation": self.normalisation,
            "weights": dict(self.weights),
            "ahp": self.ahp.to_dict() if self.ahp else None,
            "metric_crs": f"EPSG:{self.metric_epsg}" if self.metric_epsg else None,
            "warnings": list(self.warnings),
            "sites": sites,
        }


def _num(x: Any) -> float:
    return float(x)


def _jsonnum(x: Any) -> float | None:
    v = float(x)
    return None if np.isnan(v) else v


def default_recommendation_rules() -> RecommendationRules:
    """Return the packaged example rules (``data/recommendation_rules.yaml``)."""
    return parse_recommendation_rules(load_packaged_yaml("data/recommendation_rules.yaml"))


def resolve_weights(config: ScoringConfig) -> tuple[dict[str, float], AHPResult | None, list[str]]:
    """Weights per criterion name, the AHP result if any, and warnings.

    Direct weights that do not sum to 1 are normalised, with a warning.

    Raises
    ------
    ValidationError
        Missing, unknown or negative weights; all-zero weights; a bad or inconsistent AHP
        matrix.
    """
    names = [c.name for c in config.criteria]
    labels = [c.label for c in config.criteria]
    spec = config.weights
    warnings: list[str] = []
    if spec.ahp_matrix is not None or spec.ahp_pairs is not None:
        if spec.ahp_pairs is not None:
            alias = {c.label: c.name for c in config.criteria} | {n: n for n in names}
            pairs = []
            for a, b, v in spec.ahp_pairs:
                for x in (a, b):
                    if x not in alias:
                        raise ValidationError(
                            f"两两比较中出现未定义的准则: {x}",
                            key="ahp_unknown_criterion",
                            hint="可用准则: " + "、".join(names),
                        )
                pairs.append((labels[names.index(alias[a])], labels[names.index(alias[b])], v))
            matrix: Any = ahp_matrix_from_pairs(labels, pairs)
        else:
            matrix = spec.ahp_matrix
        res = ahp_weights(matrix, labels)
        return dict(zip(names, res.weights, strict=True)), res, warnings
    given = dict(spec.direct or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValidationError(
            "权重中出现未定义的准则: " + "、".join(unknown), key="weight_unknown_criterion"
        )
    missing = [n for n in names if n not in given]
    if missing:
        raise ValidationError(
            "以下准则没有权重: " + "、".join(missing),
            key="weight_missing",
            hint="为每个准则给出权重, 或改用 AHP 判断矩阵",
        )
    w: dict[str, float] = {}
    for n in names:
        try:
            w[n] = float(given[n])
        except (TypeError, ValueError):
            raise ValidationError(
                f"准则 {n} 的权重不是数字: {given[n]!r}", key="weight_invalid"
            ) from None
        if not np.isfinite(w[n]) or w[n] < 0:
            raise ValidationError(
                f"准则 {n} 的权重必须为非负数: {given[n]!r}", key="weight_invalid"
            )
    total = sum(w.values())
    if total <= 0:
        raise ValidationError("权重全部为 0, 无法评价", key="weight_zero")
    tol = ahp_constants().weights_sum_tolerance
    if abs(total - 1.0) > tol:
        warnings.append(f"权重之和为 {total:.4g}, 不等于 1, 已按比例归一化")
        w = {k: v / total for k, v in w.items()}
    return w, None, warnings


def weighted_sum(
    normalised: pd.DataFrame, weights: Mapping[str, float]
) -> tuple[pd.Series, pd.DataFrame]:
    """Weighted-sum score and per-criterion contributions ``w_j · n_ij``."""
    contrib = normalised.mul(pd.Series(weights)[normalised.columns], axis=1)
    return contrib.sum(axis=1).rename("score"), contrib


def topsis(
    raw: pd.DataFrame, weights: Mapping[str, float], directions: Mapping[str, str]
) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """TOPSIS closeness ``C_i`` (see module docstring).

    Returns
    -------
    (Series, DataFrame, DataFrame)
        Closeness per site; weighted normalised matrix ``v``; and a frame with ``d_plus``,
        ``d_minus``.
    """
    x = raw.astype(float)
    norm = np.sqrt((x**2).sum(axis=0))
    r = x.div(norm.replace(0.0, np.nan), axis=1).fillna(0.0)
    v = r.mul(pd.Series(weights)[x.columns], axis=1)
    best = pd.Series(
        {c: (v[c].max() if directions[c] == "benefit" else v[c].min()) for c in v.columns}
    )
    worst = pd.Series(
        {c: (v[c].min() if directions[c] == "benefit" else v[c].max()) for c in v.columns}
    )
    d_plus = np.sqrt(((v - best) ** 2).sum(axis=1))
    d_minus = np.sqrt(((v - worst) ** 2).sum(axis=1))
    denom = d_plus + d_minus
    c = (d_minus / denom.replace(0.0, np.nan)).fillna(1.0)
    return c.rename("score"), v, pd.DataFrame({"d_plus": d_plus, "d_minus": d_minus})


def rank_scores(score: pd.Series) -> pd.Series:
    """Rank 1 = best; ties share the smaller rank ("competition" ranking)."""
    return score.round(12).rank(ascending=False, method="min").astype(int).rename("rank")


def _score(
    method: str,
    raw: pd.DataFrame,
    normalised: pd.DataFrame,
    weights: Mapping[str, float],
    directions: Mapping[str, str],
) -> tuple[pd.Series, pd.DataFrame]:
    if method == "weighted":
        return weighted_sum(normalised, weights)
    if method == "topsis":
        s, v, _ = topsis(raw, weights, directions)
        return s, v
    raise ValidationError(
        f"未知的评价方法: {method}", key="method_unknown", hint=", ".join(METHODS)
    )


def sensitivity_analysis(
    method: str,
    raw: pd.DataFrame,
    normalised: pd.DataFrame,
    weights: Mapping[str, float],
    directions: Mapping[str, str],
    *,
    step: float | None = None,
) -> pd.DataFrame:
    """Rank stability under ±``step`` changes of each weight (renormalised).

    Returns
    -------
    DataFrame
        Columns ``criterion``, ``change`` (e.g. ``+10%``), ``site_id``, ``base_rank``,
        ``new_rank``, ``rank_kept``, plus the perturbed weight of that criterion ``weight``.
    """
    h = ahp_constants().sensitivity_step if step is None else float(step)
    base = rank_scores(_score(method, raw, normalised, weights, directions)[0])
    rows = []
    for c in weights:
        for sign in (1.0, -1.0):
            w = dict(weights)
            w[c] = w[c] * (1.0 + sign * h)
            total = sum(w.values())
            w = {k: v / total for k, v in w.items()}
            new = rank_scores(_score(method, raw, normalised, w, directions)[0])
            label = f"{'+' if sign > 0 else '-'}{h * 100:g}%"
            for sid in base.index:
                rows.append(
                    {
                        "criterion": c,
                        "change": label,
                        "weight": w[c],
                        "site_id": sid,
                        "base_rank": int(base[sid]),
                        "new_rank": int(new[sid]),
                        "rank_kept": bool(base[sid] == new[sid]),
                    }
                )
    return pd.DataFrame(rows)


def recommend(ranks: pd.Series, minmax: pd.DataFrame, rules: RecommendationRules) -> pd.DataFrame:
    """Phase (by rank band) and mode (first matching rule on min-max values) per site."""
    n = len(ranks)
    out = []
    for sid, r in ranks.items():
        frac = r / n if n else 1.0
        band = next(b for b in rules.phases if frac <= b.max_rank_fraction + 1e-12)
        mode, text = "", ""
        for m in rules.modes:
            ok = True
            for crit, cond in m.when.items():
                if crit not in minmax.columns:
                    ok = False
                    break
                val = _num(minmax.at[sid, crit])
                if "min" in cond and val < cond["min"]:
                    ok = False
                if "max" in cond and val > cond["max"]:
                    ok = False
            if ok:
                mode, text = m.mode, m.text
                break
        out.append(
            {
                "site_id": sid,
                "phase": band.phase,
                "period": band.period,
                "mode": mode,
                "mode_text": text,
            }
        )
    return pd.DataFrame(out).set_index("site_id")


def score_sites(
    sites: pd.DataFrame,
    config: ScoringConfig,
    *,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    indicators: pd.DataFrame | None = None,
    method: str | None = None,
    normalisation: str | None = None,
) -> ScoringResult:
    """Score and rank sites on the configured criteria.

    Parameters
    ----------
    sites : DataFrame or GeoDataFrame
        One row per site with ``config.id_field`` (and ``config.name_field`` if present).
    config : ScoringConfig
    layers, tables, indicators : optional
        Inputs the criterion sources refer to (see :func:`criterion_values`).
    method, normalisation : str, optional
        Override the configured method (``weighted``/``topsis``) or normalisation.

    Raises
    ------
    InputError
        A criterion with no values at all (key ``criterion_no_values``).
    ValidationError
        Missing values at some sites, bad weights or AHP matrix, unknown method.
    """
    meth = method or config.method
    if meth not in METHODS:
        raise ValidationError(
            f"未知的评价方法: {meth}", key="method_unknown", hint="weighted 或 topsis"
        )
    norm = normalisation or config.normalisation
    if norm not in NORMALISATIONS:
        raise ValidationError(
            f"未知的标准化方法: {norm}", key="normalisation_unknown", hint="minmax、zscore 或 rank"
        )
    if len(sites) == 0:
        raise InputError("没有待评价的站点", key="no_sites")
    weights, ahp, warnings = resolve_weights(config)
    raw, epsg = raw_values(sites, config, layers=layers, tables=tables, indicators=indicators)
    for c in config.criteria:
        col = raw[c.name]
        if col.isna().all():
            raise InputError(
                f"准则「{c.label}」({c.name}) 没有任何取值 (来源: {c.source.describe()})",
                key="criterion_no_values",
                field=c.name,
                hint="检查该准则的数据来源是否提供, 字段名是否正确",
            )
        if col.isna().any():
            miss = [str(s) for s in col.index[col.isna()]]
            raise ValidationError(
                f"准则「{c.label}」({c.name}) 在以下站点缺少取值: " + "、".join(miss),
                key="criterion_missing_values",
                field=c.name,
                hint="补齐取值, 或为缺失站点给出人工评分",
                data={"sites": miss},
            )
        if col.nunique() == 1 and len(col) > 1:
            warnings.append(f"准则「{c.label}」在所有站点取值相同, 对排序没有区分作用")
    directions: dict[str, str] = {c.name: c.direction for c in config.criteria}
    normalised = normalise_frame(raw, directions, norm)
    score, contrib = _score(meth, raw, normalised, weights, directions)
    ranks = rank_scores(score)
    sens = sensitivity_analysis(meth, raw, normalised, weights, directions)
    stable = sens.groupby("site_id")["rank_kept"].all()
    if config.rules is not None:
        rules = config.rules
    else:
        d = default_recommendation_rules()
        rules = RecommendationRules(
            phases=d.phases,
            modes=tuple(m for m in d.modes if all(k in directions for k in m.when)),
            source=d.source,
            example=d.example,
        )
    minmax = pd.DataFrame({c: normalise(raw[c], directions[c], "minmax") for c in raw.columns})
    rec = recommend(ranks, minmax, rules)
    if config.name_field in sites.columns:
        names = pd.Series([str(v) for v in sites[config.name_field]], index=raw.index)
    else:
        names = pd.Series(list(raw.index), index=raw.index)
    table = pd.DataFrame(
        {
            "name": names,
            "score": score,
            "rank": ranks,
            "phase": rec["phase"],
            "period": rec["period"],
            "mode": rec["mode"],
            "mode_text": rec["mode_text"],
            "rank_stable": stable.reindex(raw.index).astype(bool),
        }
    ).sort_values(["rank", "name"])
    return ScoringResult(
        config=config,
        method=meth,
        normalisation=norm,
        weights=weights,
        ahp=ahp,
        raw=raw,
        normalised=normalised,
        contributions=contrib,
        table=table,
        sensitivity=sens,
        warnings=tuple(warnings),
        metric_epsg=epsg,
        rules=rules,
    )
