"""Policy packs: parameters cited by clause, rule switches and messages, shared by all modules."""

from yizhangtu.policy.loader import (
    PackSummary,
    list_packs,
    load_pack,
    pack_from_mapping,
    registry_for,
    schema,
    validate_mapping,
    validate_pack,
)
from yizhangtu.policy.pack import (
    UNIT_KINDS,
    UNIT_LABELS,
    Parameter,
    PolicyPack,
    RuleSpec,
    add_period,
)
from yizhangtu.policy.rules import (
    Finding,
    PackProblem,
    RuleContext,
    RuleDef,
    RuleRegistry,
    at_least,
    at_most,
    errors_in,
)

__all__ = [
    "UNIT_KINDS",
    "UNIT_LABELS",
    "Finding",
    "PackProblem",
    "PackSummary",
    "Parameter",
    "PolicyPack",
    "RuleContext",
    "RuleDef",
    "RuleRegistry",
    "RuleSpec",
    "add_period",
    "at_least",
    "at_most",
    "errors_in",
    "list_packs",
    "load_pack",
    "pack_from_mapping",
    "registry_for",
    "schema",
    "validate_mapping",
    "validate_pack",
]
