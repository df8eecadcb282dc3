"""Identity numbers: GB 11643 citizen ID checksum, GB 32100 credit code, phone numbers, masking.

The 18-character citizen identity number (公民身份号码, GB 11643-1999) is a 6-digit address
code, an 8-digit birth date, a 3-digit sequence code and a check character computed by
ISO 7064 MOD 11-2: weights ``2**(17-i) mod 11`` and check ``(12 - sum mod 11) mod 11``,
``10`` written ``X``. The unified social credit code of organisations (统一社会信用代码,
GB 32100-2015) has 18 characters and an ISO 7064 MOD 31-3 check character.

Masks keep the first and last four characters of an ID (``4401**********123X``) and the
first three and last four digits of a mobile number (``138****5678``).
"""

from __future__ import annotations

import re
from datetime import date

from yizhangtu.errors import ValidationError

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "ID_WEIGHTS",
    "PROVINCE_CODES",
    "credit_code_check_char",
    "id_check_char",
    "mask_id",
    "mask_phone",
    "normalise_id",
    "normalise_phone",
    "validate_credit_code",
    "validate_id_number",
    "validate_phone",
]

#: Weights of positions 1..17 of GB 11643 (``2**(17-i) mod 11``).
ID_WEIGHTS: tuple[int, ...] = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK = "10X98765432"  # index: weighted sum mod 11

#: First two digits of the address code: provinces (GB/T 2260), plus 71 台湾, 81 香港,
#: 82 澳门 and 83 (台湾居民居住证).
PROVINCE_CODES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36",
        "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62",
        "63", "64", "65", "71", "81", "82", "83",
    }
)  # fmt: skip

#: Characters of the credit code (GB 32100): digits and capitals without I, O, S, V, Z.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_PHONE = re.compile(r"^\+?[\d-]{7,20}$")


def normalise_id(value: object) -> str:
    """Strip spaces and upper-case the check character (``x`` → ``X``)."""
    text = "" if value is None else str(value)
    return re.sub(r"\s+", "", text).upper()


def id_check_char(first17: str) -> str:
    """Check character of a citizen ID from its first 17 digits (GB 11643, MOD 11-2)."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValidationError(
            "计算校验码需要 17 位数字本体码", key="bad_id_number", field="id_number"
        )
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True))
    return _CHECK[total % 11]


def mask_id(value: str | None) -> str | None:
    """Mask an ID: keep the first and last four characters (``4401**********123X``)."""
    if value is None:
        return None
    text = normalise_id(value)
    if len(text) <= 8:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 8) + text[-4:]


def _id_error(reason: str, value: str, feature: str | None, key: str = "bad_id_number") -> None:
    raise ValidationError(
        f"身份证号码 {mask_id(value)} 无效: {reason}",
        key=key,
        field="id_number",
        feature=feature,
        hint="核对证件号码; 18 位号码末位为校验码(GB 11643), 15 位旧号码须换为 18 位",
    )


def validate_id_number(value: object, feature: str | None = None, today: date | None = None) -> str:
    """Return the normalised citizen ID or raise ValidationError (never echoing the number).

    Checks length and characters, the province part of the address code, the birth date
    (a real date, not in the future) and the GB 11643 check character.
    """
    text = normalise_id(value)
    if len(text) == 15 and text.isdigit():
        _id_error("15 位旧号码没有校验码, 请换为 18 位号码", text, feature)
    if not _ID_SHAPE.match(text):
        _id_error("须为 17 位数字加 1 位校验码(数字或 X)", text, feature)
    if text[:2] not in PROVINCE_CODES:
        _id_error(f"地址码前两位 {text[:2]} 不是有效的省级代码", text, feature)
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        _id_error("出生日期码不是有效日期", text, feature)
    else:
        if born.year < 1800 or born > (today or date.today()):
            _id_error("出生日期码超出合理范围", text, feature)
    if id_check_char(text[:17]) != text[17]:
        _id_error("校验码不符(GB 11643 MOD 11-2)", text, feature, key="bad_id_checksum")
    return text


def credit_code_check_char(first17: str) -> str:
    """Check character of a unified social credit code (GB 32100, MOD 31-3)."""
    values = [CREDIT_CODE_ALPHABET.index(c) for c in first17]
    total = sum(v * w for v, w in zip(values, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def validate_credit_code(value: object, feature: str | None = None) -> str:
    """Return the normalised credit code of an organisation or raise ValidationError."""
    text = normalise_id(value)
    ok = len(text) == 18 and all(c in CREDIT_CODE_ALPHABET for c in text)
    if not ok or credit_code_check_char(text[:17]) != text[17]:
        raise ValidationError(
            f"统一社会信用代码 {mask_id(text)} 无效(须为 18 位且校验码符合 GB 32100)",
            key="bad_credit_code",
            field="id_number",
            feature=feature,
            hint="核对营业执照上的统一社会信用代码",
        )
    return text


def normalise_phone(value: object) -> str:
    """Strip spaces, dots and brackets from a phone number."""
    text = "" if value is None else str(value)
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    return re.sub(r"[\s().]", "", text)


def validate_phone(value: object, feature: str | None = None) -> str:
    """Return the normalised phone number or raise ValidationError (never echoing it)."""
    text = normalise_phone(value)
    if not _PHONE.match(text):
        raise ValidationError(
            f"联系电话 {mask_phone(text)} 格式无效",
            key="bad_phone",
            field="phone",
            feature=feature,
            hint="手机号为 11 位数字; 固定电话可含区号和连字符",
        )
    return text


def mask_phone(value: str | None) -> str | None:
    """Mask a phone number: ``138****5678`` for mobiles, else all but the last four."""
    if value is None:
        return None
    text = normalise_phone(value)
    if _MOBILE.match(text):
        return text[:3] + "****" + text[-4:]
    if len(text) <= 4:
        return "*" * len(text)
    return "*" * (len(text) - 4) + text[-4:]
