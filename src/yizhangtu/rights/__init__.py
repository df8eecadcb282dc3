"""Rights registry (权益/产权信息): parcels, holders, shares, consent and signing records.

Pure domain code: computed consent and signing ratios of any polygon or renewal unit
(:mod:`~yizhangtu.rights.ratios`), their use by the renewal rules, personal-data protection
(:mod:`~yizhangtu.rights.protect`, :mod:`~yizhangtu.rights.ids`), rosters as workbooks
(:mod:`~yizhangtu.rights.excel`) and the certificate backlog (:mod:`~yizhangtu.rights.backlog`).
Persistence and the CLI live in :mod:`yizhangtu.services.rights` and :mod:`yizhangtu.cli.rights`.
"""

from yizhangtu.rights.ids import mask_id, mask_phone, validate_id_number
from yizhangtu.rights.model import (
    AgreementRecord,
    Compensation,
    Holder,
    HolderKind,
    HolderStatus,
    Ownership,
    Parcel,
    RecordKind,
    RecordStatus,
    Registry,
    RightsType,
    Share,
    Transfer,
)
from yizhangtu.rights.protect import PIICipher, ProtectedValue, cipher_from_secret
from yizhangtu.rights.ratios import (
    HolderLine,
    ScopeRatios,
    apply_registry,
    scope_ratios,
    unit_ratios,
)

__all__ = [
    "AgreementRecord",
    "Compensation",
    "Holder",
    "HolderKind",
    "HolderLine",
    "HolderStatus",
    "Ownership",
    "PIICipher",
    "Parcel",
    "ProtectedValue",
    "RecordKind",
    "RecordStatus",
    "Registry",
    "RightsType",
    "ScopeRatios",
    "Share",
    "Transfer",
    "apply_registry",
    "cipher_from_secret",
    "mask_id",
    "mask_phone",
    "scope_ratios",
    "unit_ratios",
    "validate_id_number",
]
