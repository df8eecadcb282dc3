"""Dongguan "三旧" renewal library (城市更新项目库): pure model, rules, workflow and views.

Persistence, audit, Excel files and the CLI live in adapters on top of this package.
"""

from yizhangtu.renewal.model import (
    ConsentFigures,
    Mode,
    RenewalLibrary,
    RenewalUnit,
    RightsHolder,
    Stage,
    StageDates,
    TownAccount,
    UnitMoney,
    UnitType,
    Zone,
    ZoneTier,
)
from yizhangtu.renewal.rules import (
    RULES,
    evaluate_library,
    evaluate_town,
    evaluate_unit,
    evaluate_zone,
)
from yizhangtu.renewal.workflow import (
    TransitionResult,
    advance,
    check_transition,
    check_version,
    unit_status,
)

__all__ = [
    "RULES",
    "ConsentFigures",
    "Mode",
    "RenewalLibrary",
    "RenewalUnit",
    "RightsHolder",
    "Stage",
    "StageDates",
    "TownAccount",
    "TransitionResult",
    "UnitMoney",
    "UnitType",
    "Zone",
    "ZoneTier",
    "advance",
    "check_transition",
    "check_version",
    "evaluate_library",
    "evaluate_town",
    "evaluate_unit",
    "evaluate_zone",
    "unit_status",
]
