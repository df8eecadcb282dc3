"""Rebuild monitoring (复建监测): construction reappearing on accepted plots.

A plot accepted in year t is checked against every later survey: the area of the plot that is
城乡建设用地 in the later survey but was not in the survey it was accepted against is rebuilt
(防止已减量地块复建, 001). More than the pack's tolerance raises an alert.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date

import geopandas as gpd
import numpy as np
import shapely

from yizhangtu.policy.pack import PolicyPack
from yizhangtu.reduction._geom import Plane, difference_each, intersect
from yizhangtu.reduction.model import RebuildAlert
from yizhangtu.reduction.rules import RebuildFacts, evaluate

__all__ = ["detect_rebuild"]


def detect_rebuild(
    plots: gpd.GeoDataFrame,
    *,
    accepted_survey: gpd.GeoDataFrame,
    accepted_construction: np.ndarray,
    later_survey: gpd.GeoDataFrame,
    later_construction: np.ndarray,
    survey_year: int,
    survey_label: str,
    pack: PolicyPack,
    unit_names: Mapping[str, str] | None = None,
) -> list[RebuildAlert]:
    """Rebuilt area of each accepted plot in a later survey.

    Parameters
    ----------
    plots : GeoDataFrame
        Accepted plots (``plot_id``, ``township``, ``accepted_year``), all accepted against
        ``accepted_survey``.
    accepted_survey, accepted_construction : GeoDataFrame, bool array
        The survey the plots were accepted against and its construction parcels.
    later_survey, later_construction : GeoDataFrame, bool array
        A later survey.
    survey_year, survey_label : int, str
        Year and label of the later survey (reported in the alert).
    pack : PolicyPack
        Gives the tolerance (``rebuild_tolerance_m2``) and the messages.
    unit_names : mapping, optional
        Township code → name, for the messages.

    Returns
    -------
    list of RebuildAlert
        One per plot; ``alert`` is True when the rebuilt area exceeds the tolerance.
    """
    if len(plots) == 0:
        return []
    plane = Plane.for_frames(plots, later_survey)
    P = plane.project(plots)
    area = np.asarray(shapely.area(P), dtype=float)
    GL = plane.project(later_survey)[np.asarray(later_construction, dtype=bool)]
    GA = plane.project(accepted_survey)[np.asarray(accepted_construction, dtype=bool)]
    now = intersect(P, GL)
    fresh = difference_each(now.geoms, GA)
    rebuilt: dict[int, list[float]] = {}
    for i, g in zip(now.ia, fresh, strict=True):
        if g is not None:
            rebuilt.setdefault(int(i), []).append(float(shapely.area(g)))
    out = []
    at = date(int(survey_year), 12, 31)
    for i, row in enumerate(plots.itertuples(index=False)):
        m2 = math.fsum(rebuilt.get(i, []))
        facts = RebuildFacts(
            plot_id=str(row.plot_id),
            unit=(unit_names or {}).get(str(row.township), str(row.township)),
            survey_year=int(survey_year),
            rebuilt_m2=m2,
            plot_area_m2=float(area[i]),
        )
        f = evaluate(pack, "rebuild", facts, at, subject_id=facts.plot_id)[0]
        out.append(
            RebuildAlert(
                plot_id=facts.plot_id,
                township=str(row.township),
                accepted_year=int(row.accepted_year),
                survey_label=str(survey_label),
                survey_year=int(survey_year),
                rebuilt_m2=m2,
                plot_area_m2=float(area[i]),
                alert=f.outcome == "rebuilt",
                severity=f.severity,
                message=f.message,
            )
        )
    return out
