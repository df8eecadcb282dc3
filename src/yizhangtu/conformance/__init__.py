"""Control lines and plan conformance (管控线、多规合一、红线审查、规划传导).

Pure functions over GeoDataFrames and frozen dataclasses; verdicts and tolerances come from
policy packs (``policies/conformance-*.yaml``), matrices and hierarchies from ``data/``.

- :mod:`~yizhangtu.conformance.lines` — line catalogue, mutual overlaps, zone shares;
- :mod:`~yizhangtu.conformance.conflicts` — compatibility matrices and conflict patches;
- :mod:`~yizhangtu.conformance.redline` — compliance check of a project red line;
- :mod:`~yizhangtu.conformance.jzd` — 界址点坐标 TXT parser;
- :mod:`~yizhangtu.conformance.tolerance` — coordinate tolerance (004 (十一)), slivers;
- :mod:`~yizhangtu.conformance.transmission` — plan hierarchies and caps (004 (四), 002 (一(一)二));
- :mod:`~yizhangtu.conformance.rules` — the rule registry (module ``conformance``).
"""

from yizhangtu.conformance.conflicts import (
    COMPATIBLE,
    CompatibilityMatrix,
    ConflictResult,
    find_conflicts,
    list_matrices,
    load_matrix,
    matrix_from_mapping,
    summarise_by_unit,
)
from yizhangtu.conformance.jzd import JzdFile, jzd_to_frame, looks_like_jzd, parse_jzd
from yizhangtu.conformance.lines import (
    LineOverlapResult,
    LineType,
    ZoneShareResult,
    line_overlaps,
    line_type,
    line_types,
    select_zone,
    zone_shares,
)
from yizhangtu.conformance.redline import LineLayer, PlanLayer, RedlineCheck, check_redline
from yizhangtu.conformance.rules import RULES
from yizhangtu.conformance.tolerance import MatchMeasure, Tolerances, measure_match, split_slivers
from yizhangtu.conformance.transmission import (
    Elasticity,
    Hierarchy,
    TransmissionResult,
    check_transmission,
    hierarchy_from_mapping,
    list_hierarchies,
    load_hierarchy,
)

__all__ = [
    "COMPATIBLE",
    "RULES",
    "CompatibilityMatrix",
    "ConflictResult",
    "Elasticity",
    "Hierarchy",
    "JzdFile",
    "LineLayer",
    "LineOverlapResult",
    "LineType",
    "MatchMeasure",
    "PlanLayer",
    "RedlineCheck",
    "Tolerances",
    "TransmissionResult",
    "ZoneShareResult",
    "check_redline",
    "check_transmission",
    "find_conflicts",
    "hierarchy_from_mapping",
    "jzd_to_frame",
    "line_overlaps",
    "line_type",
    "line_types",
    "list_hierarchies",
    "list_matrices",
    "load_hierarchy",
    "load_matrix",
    "looks_like_jzd",
    "matrix_from_mapping",
    "measure_match",
    "parse_jzd",
    "select_zone",
    "split_slivers",
    "summarise_by_unit",
    "zone_shares",
]
