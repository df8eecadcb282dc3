"""Analytic hierarchy process (层次分析法): weights from a pairwise comparison matrix.

The weights are the principal (Perron) eigenvector of the reciprocal judgement matrix,
normalised to sum 1. Consistency: ``CI = (λmax − n)/(n − 1)``, ``CR = CI/RI`` with Saaty's
random index RI (packaged data ``data/ahp.yaml``, cited there). A matrix whose CR exceeds the
threshold (also data) is refused, naming the judgements that deviate most from the ratios the
weights imply. Deviations are ranked by ``|ln ε_ij|`` with ``ε_ij = a_ij · w_j / w_i`` (Saaty's
perturbation of a consistent matrix), which treats a judgement and its reciprocal alike; the
message shows ``a_ij``, ``w_i/w_j`` and ``|a_ij − w_i/w_j|`` for each named pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from yizhangtu.errors import InputError, ValidationError
from yizhangtu.scoring._data import load_packaged_yaml

__all__ = [
    "AHPConstants",
    "AHPResult",
    "InconsistentJudgement",
    "ahp_constants",
    "ahp_matrix_from_pairs",
    "ahp_weights",
    "check_pairwise_matrix",
    "parse_judgement",
]


@dataclass(frozen=True)
class AHPConstants:
    """Method constants read from ``data/ahp.yaml``."""

    random_index: Mapping[int, float]
    ri_source: str
    max_cr: float
    reciprocal_tolerance: float
    weights_sum_tolerance: float
    pairs_shown: int
    sensitivity_step: float


def ahp_constants() -> AHPConstants:
    """Load the packaged AHP constants (Saaty's RI table, CR threshold, tolerances)."""
    d = load_packaged_yaml("data/ahp.yaml")
    ri = {int(k): float(v) for k, v in d["random_index"]["values"].items()}
    return AHPConstants(
        random_index=ri,
        ri_source=str(d["random_index"]["source"]),
        max_cr=float(d["consistency_ratio_max"]["value"]),
        reciprocal_tolerance=float(d["reciprocal_tolerance"]["value"]),
        weights_sum_tolerance=float(d["weights_sum_tolerance"]["value"]),
        pairs_shown=int(d["inconsistent_pairs_shown"]["value"]),
        sensitivity_step=float(d["sensitivity_step"]["value"]),
    )


@dataclass(frozen=True)
class InconsistentJudgement:
    """One judgement ``a_ij`` set against the ratio ``w_i/w_j`` its weights imply."""

    row: str
    col: str
    given: float
    implied: float
    deviation: float
    log_error: float = 0.0

    def describe(self) -> str:
        """Chinese one-line description."""
        return (
            f"「{self.row}」相对「{self.col}」判断为 {_fmt(self.given)}, "
            f"按权重推算约为 {self.implied:.2f} (偏差 {self.deviation:.2f})"
        )


@dataclass(frozen=True)
class AHPResult:
    """Weights and consistency figures of one pairwise matrix."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    lambda_max: float
    ci: float
    ri: float
    cr: float
    max_cr: float
    consistent: bool
    most_inconsistent: tuple[InconsistentJudgement, ...]
    ri_source: str

    def weights_dict(self) -> dict[str, float]:
        """Return ``{name: weight}``."""
        return dict(zip(self.names, self.weights, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "weights": self.weights_dict(),
            "lambda_max": self.lambda_max,
            "ci": self.ci,
            "ri": self.ri,
            "cr": self.cr,
            "max_cr": self.max_cr,
            "consistent": self.consistent,
            "ri_source": self.ri_source,
            "most_inconsistent": [
                {
                    "row": j.row,
                    "col": j.col,
                    "given": j.given,
                    "implied": j.implied,
                    "deviation": j.deviation,
                    "log_error": j.log_error,
                }
                for j in self.most_inconsistent
            ],
        }


def _fmt(x: float) -> str:
    if x >= 1 or x <= 0:
        return f"{x:g}"
    inv = 1.0 / x
    if abs(inv - round(inv)) < 1e-6:
        return f"1/{round(inv)}"
    return f"{x:.3g}"


def parse_judgement(value: Any, *, where: str = "") -> float:
    """Parse one judgement: a number or a fraction string such as ``"1/3"``.

    Raises
    ------
    InputError
        If the value is not a number.
    """
    if isinstance(value, bool):
        raise InputError(f"判断矩阵{where}的取值不是数字: {value!r}", key="ahp_not_number")
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace("／", "/")
        try:
            return float(Fraction(text))
        except (ValueError, ZeroDivisionError):
            pass
    raise InputError(
        f"判断矩阵{where}的取值不是数字或分数: {value!r}",
        key="ahp_not_number",
        hint="填写 1–9 标度的数字或其倒数, 如 3 或 1/3",
    )


def ahp_matrix_from_pairs(
    names: Sequence[str], pairs: Iterable[tuple[str, str, Any]]
) -> np.ndarray:
    """Build a reciprocal matrix from judgements ``(a, b, v)`` meaning "a over b is v".

    Every unordered pair must be judged exactly once (or twice, reciprocally).

    Raises
    ------
    ValidationError
        On an unknown name, a missing pair or two conflicting judgements of one pair.
    """
    idx = {n: i for i, n in enumerate(names)}
    n = len(names)
    a = np.full((n, n), np.nan)
    np.fill_diagonal(a, 1.0)
    for row, col, raw in pairs:
        for nm in (row, col):
            if nm not in idx:
                raise ValidationError(
                    f"两两比较中出现未定义的准则: {nm}",
                    key="ahp_unknown_criterion",
                    hint="可用准则: " + "、".join(names),
                )
        v = parse_judgement(raw, where=f"「{row}」对「{col}」")
        if v <= 0:
            raise ValidationError(
                f"判断矩阵「{row}」对「{col}」的取值为 {v:g}, 必须为正数",
                key="ahp_zero",
                hint="1–9 标度: 1 表示同等重要, 3/5/7/9 依次更重要, 倒数表示相反",
            )
        i, j = idx[row], idx[col]
        if i == j:
            continue
        for p, q, val in ((i, j, v), (j, i, 1.0 / v)):
            if not np.isnan(a[p, q]) and abs(a[p, q] * (1.0 / val) - 1.0) > 1e-9:
                raise ValidationError(
                    f"「{names[p]}」与「{names[q]}」的比较给出了两个矛盾的判断",
                    key="ahp_conflicting_pair",
                )
            a[p, q] = val
    missing = [(names[i], names[j]) for i in range(n) for j in range(i + 1, n) if np.isnan(a[i, j])]
    if missing:
        raise ValidationError(
            "两两比较不完整, 缺少: " + "; ".join(f"「{p}」对「{q}」" for p, q in missing),
            key="ahp_incomplete",
            data={"missing": [list(m) for m in missing]},
        )
    return a


def check_pairwise_matrix(
    matrix: Any, names: Sequence[str] | None = None, *, tolerance: float | None = None
) -> np.ndarray:
    """Validate a pairwise comparison matrix and return it as floats.

    Checks: square, all entries positive numbers (no zero), unit diagonal, and reciprocity
    ``a_ij × a_ji ≈ 1`` within the packaged tolerance.

    Raises
    ------
    ValidationError
        With a Chinese message naming the offending cells.
    """
    const = ahp_constants()
    tol = const.reciprocal_tolerance if tolerance is None else tolerance
    rows = list(matrix) if not isinstance(matrix, np.ndarray) else matrix.tolist()
    n = len(rows)
    if n == 0:
        raise ValidationError("判断矩阵为空", key="ahp_empty")
    if any(not isinstance(r, list | tuple | np.ndarray) or len(r) != n for r in rows):
        raise ValidationError(
            f"判断矩阵必须是 {n}×{n} 的方阵",
            key="ahp_not_square",
            hint="每一行的个数须等于准则个数",
        )
    labels = list(names) if names is not None else [f"第{i + 1}项" for i in range(n)]
    if len(labels) != n:
        raise ValidationError(
            f"判断矩阵阶数 {n} 与准则个数 {len(labels)} 不一致", key="ahp_size_mismatch"
        )
    a = np.empty((n, n))
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            a[i, j] = parse_judgement(v, where=f"第{i + 1}行第{j + 1}列")
    bad = np.argwhere(~np.isfinite(a) | (a <= 0))
    if len(bad):
        cells = "、".join(
            f"「{labels[i]}」对「{labels[j]}」(第{i + 1}行第{j + 1}列)={a[i, j]:g}" for i, j in bad
        )
        raise ValidationError(
            f"判断矩阵含零、负数或非有限值: {cells}",
            key="ahp_zero",
            hint="判断矩阵各元素须为正数 (1–9 标度或其倒数), 不能为 0",
            data={"cells": bad.tolist()},
        )
    diag = [i for i in range(n) if abs(a[i, i] - 1.0) > tol]
    if diag:
        raise ValidationError(
            "判断矩阵对角线元素必须为 1: " + "、".join(f"第{i + 1}行" for i in diag),
            key="ahp_diagonal",
        )
    prod = a * a.T
    nonrec = [(i, j) for i in range(n) for j in range(i + 1, n) if abs(prod[i, j] - 1.0) > tol]
    if nonrec:
        cells = "; ".join(
            f"「{labels[i]}」对「{labels[j]}」={_fmt(a[i, j])} 而反向为 {_fmt(a[j, i])}"
            for i, j in nonrec
        )
        raise ValidationError(
            f"判断矩阵不满足互反性 (a_ij × a_ji 应为 1): {cells}",
            key="ahp_not_reciprocal",
            hint="反向判断应取倒数, 例如 a_12 = 3 则 a_21 = 1/3",
            data={"pairs": [[labels[i], labels[j]] for i, j in nonrec]},
        )
    return a


def _principal(a: np.ndarray) -> tuple[float, np.ndarray]:
    vals, vecs = np.linalg.eig(a)
    k = int(np.argmax(vals.real))
    lam = float(vals[k].real)
    v = np.abs(vecs[:, k].real)
    return lam, v / v.sum()


def ahp_weights(
    matrix: Any,
    names: Sequence[str] | None = None,
    *,
    enforce: bool = True,
    max_cr: float | None = None,
) -> AHPResult:
    """Weights, λmax, CI, RI and CR of a pairwise comparison matrix.

    Parameters
    ----------
    matrix : array-like (n × n)
        Judgements ``a_ij`` = importance of i over j on Saaty's 1–9 scale; entries may be
        numbers or fraction strings (``"1/3"``).
    names : sequence of str, optional
        Criterion names, used in messages and in the result.
    enforce : bool
        Raise when CR exceeds the threshold (default). With ``False`` the result is returned
        with ``consistent=False``.
    max_cr : float, optional
        Threshold; default from ``data/ahp.yaml`` (0.10, Saaty).

    Returns
    -------
    AHPResult

    Raises
    ------
    ValidationError
        Bad matrix (see :func:`check_pairwise_matrix`), order beyond the RI table, or
        ``CR > max_cr`` (key ``ahp_inconsistent``) naming the most inconsistent judgements.
    """
    const = ahp_constants()
    a = check_pairwise_matrix(matrix, names)
    n = a.shape[0]
    labels = tuple(names) if names is not None else tuple(f"第{i + 1}项" for i in range(n))
    if n not in const.random_index:
        raise ValidationError(
            f"判断矩阵阶数 {n} 超出随机一致性指标 RI 表的范围 (1–{max(const.random_index)})",
            key="ahp_order_unsupported",
            hint="减少同一层级的准则个数, 或分层构建判断矩阵",
        )
    lam, w = _principal(a)
    ri = const.random_index[n]
    ci = (lam - n) / (n - 1) if n > 2 else 0.0
    ci = max(ci, 0.0) if abs(ci) < 1e-12 else ci
    cr = ci / ri if ri > 0 else 0.0
    threshold = const.max_cr if max_cr is None else float(max_cr)
    devs: list[InconsistentJudgement] = []
    for i in range(n):
        for j in range(i + 1, n):
            p, q = (i, j) if a[i, j] >= 1.0 else (j, i)
            implied = float(w[p] / w[q])
            given = float(a[p, q])
            devs.append(
                InconsistentJudgement(
                    labels[p],
                    labels[q],
                    given,
                    implied,
                    abs(given - implied),
                    abs(float(np.log(given / implied))),
                )
            )
    devs.sort(key=lambda d: d.log_error, reverse=True)
    worst = tuple(devs[: const.pairs_shown])
    consistent = cr <= threshold + 1e-12
    result = AHPResult(
        names=labels,
        weights=tuple(float(x) for x in w),
        lambda_max=lam,
        ci=float(ci),
        ri=float(ri),
        cr=float(cr),
        max_cr=threshold,
        consistent=consistent,
        most_inconsistent=worst,
        ri_source=const.ri_source,
    )
    if enforce and not consistent:
        listing = "; ".join(d.describe() for d in worst)
        raise ValidationError(
            f"判断矩阵一致性检验未通过: CR = {cr:.3f} > {threshold:.2f} "
            f"(λmax = {lam:.3f}, CI = {ci:.3f}, RI = {ri:.2f})。最不一致的判断: {listing}",
            key="ahp_inconsistent",
            hint="请复核上述判断并重新打分, 使 CR ≤ " + f"{threshold:.2f}",
            data=result.to_dict(),
        )
    return result
