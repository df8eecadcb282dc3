"""Quality control of vector layers (成果质量控制).

Used by import, ``yizhangtu check FILE``, plot submission and the overlay engine:
:func:`run_qc` returns a :class:`QCReport` of :class:`Finding` objects; :func:`repair`
fixes invalid geometries and reports every change.
"""

from yizhangtu.qc.checks import run_qc
from yizhangtu.qc.repair import repair
from yizhangtu.qc.report import (
    CHECK_TITLES,
    CHECKS,
    SEVERITIES,
    SEVERITY_TITLES,
    Finding,
    QCOptions,
    QCReport,
)

__all__ = [
    "CHECKS",
    "CHECK_TITLES",
    "SEVERITIES",
    "SEVERITY_TITLES",
    "Finding",
    "QCOptions",
    "QCReport",
    "repair",
    "run_qc",
]
