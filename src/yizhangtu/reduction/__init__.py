"""Construction-land reduction ledger (减量台账): pure functions over frames and dataclasses.

Targets (市—区—乡镇), plot submission checks (落图), year-end acceptance against the land change
survey (验收), the unit ledger with net / gross / new construction reconciled, rebuild alerts
(复建), quota transfers (指标联动) with the 增减挂钩 balance, and progress with pace warnings.
Every threshold comes from a policy pack (``beijing-reduction``) through :mod:`.rules`.
"""

from yizhangtu.reduction.excel import (
    LEDGER_SHEETS,
    ledger_to_xlsx,
    targets_from_xlsx,
    targets_to_xlsx,
)
from yizhangtu.reduction.ledger import UnitColumns, YearResult, aggregate_ledger, evaluate_year
from yizhangtu.reduction.model import (
    ACCEPTANCE_COLUMNS,
    COUNTED_VERDICTS,
    LEDGER_COLUMNS,
    LEVELS,
    PLOT_FIELDS,
    PLOT_REQUIRED,
    STATUS_LABELS,
    VERDICT_LABELS,
    VERDICTS,
    BalanceRow,
    PlotMeasure,
    ProgressRow,
    RebuildAlert,
    Target,
    Transfer,
)
from yizhangtu.reduction.plots import PlotIssue, check_plots, normalise_plots, plots_from_links
from yizhangtu.reduction.progress import pick_total_target, progress, reported_rows
from yizhangtu.reduction.rebuild import detect_rebuild
from yizhangtu.reduction.rules import RULES
from yizhangtu.reduction.survey import construction_mask
from yizhangtu.reduction.transfer import balance, check_transfer

__all__ = [
    "ACCEPTANCE_COLUMNS",
    "COUNTED_VERDICTS",
    "LEDGER_COLUMNS",
    "LEDGER_SHEETS",
    "LEVELS",
    "PLOT_FIELDS",
    "PLOT_REQUIRED",
    "RULES",
    "STATUS_LABELS",
    "VERDICTS",
    "VERDICT_LABELS",
    "BalanceRow",
    "PlotIssue",
    "PlotMeasure",
    "ProgressRow",
    "RebuildAlert",
    "Target",
    "Transfer",
    "UnitColumns",
    "YearResult",
    "aggregate_ledger",
    "balance",
    "check_plots",
    "check_transfer",
    "construction_mask",
    "detect_rebuild",
    "evaluate_year",
    "ledger_to_xlsx",
    "normalise_plots",
    "pick_total_target",
    "plots_from_links",
    "progress",
    "reported_rows",
    "targets_from_xlsx",
    "targets_to_xlsx",
]
