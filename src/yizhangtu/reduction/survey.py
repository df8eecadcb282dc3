"""Which survey parcels count as construction land for reduction (城乡建设用地)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from yizhangtu.errors import InputError
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.reduction.rules import param

__all__ = ["construction_mask"]


def construction_mask(
    survey: gpd.GeoDataFrame | pd.DataFrame,
    pack: PolicyPack,
    *,
    code_field: str = "DLBM",
    czcsxm_field: str | None = "CZCSXM",
) -> np.ndarray:
    """Flag the parcels in the pack's reduction group (default 城乡建设用地).

    Parameters
    ----------
    survey : GeoDataFrame
        Survey parcels (三调 / 年度变更调查) with land-use codes.
    pack : PolicyPack
        Gives ``code_system`` and ``construction_group``.
    code_field, czcsxm_field : str
        Land-use code (DLBM) and 城镇村属性码 (CZCSXM) columns.

    Raises
    ------
    InputError
        The code column is missing; ValidationError for unknown codes (from
        :func:`yizhangtu.codes.classify`).
    """
    from yizhangtu.codes import classify, load_groups

    if code_field not in survey.columns:
        raise InputError(
            f"调查图层缺少地类代码字段 {code_field}",
            key="reduction_survey_code_missing",
            field=code_field,
            hint="用 reduction config --code-field 指定地类代码字段",
        )
    group = str(param(pack, "construction_group"))
    system = str(param(pack, "code_system"))
    if len(survey) == 0:
        return np.zeros(0, dtype=bool)
    czc = None
    if czcsxm_field and czcsxm_field in survey.columns:
        czc = survey[czcsxm_field].astype(object).where(survey[czcsxm_field].notna(), None)
        czc = czc.map(lambda v: None if v is None or str(v).strip() == "" else str(v).strip())
    codes = survey[code_field].astype(object).map(lambda v: None if v is None else str(v).strip())
    labels = classify(codes, system=system, group=group, czcsxm=czc)
    label = load_groups("default").group(group).label
    return (labels == label).fillna(False).to_numpy(dtype=bool)
