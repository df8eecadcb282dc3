"""Protection of personal data at rest (PIPL 个人信息保护法): encryption, blind index, masks.

ID and phone numbers are encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from
the workspace secret (setting ``YIZHANGTU_SECRET_KEY``, never in the repository). Stored
values are :class:`ProtectedValue`: the ciphertext token, the masked text shown everywhere,
and a keyed HMAC "blind index" that finds duplicates without decrypting. Tokens carry the
key fingerprint, so decrypting with another key fails with a clear error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from yizhangtu.errors import InputError, ValidationError

__all__ = [
    "MIN_SECRET_LENGTH",
    "PIICipher",
    "ProtectedValue",
    "cipher_from_secret",
]

#: Shortest secret accepted (characters).
MIN_SECRET_LENGTH = 16
_TOKEN_PREFIX = "yzpii1"


def _derive(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"yizhangtu-rights", info=info).derive(
        secret.encode("utf-8")
    )


@dataclass(frozen=True)
class ProtectedValue:
    """A personal value as stored: ciphertext, mask and blind index; never the plain text.

    Attributes
    ----------
    token : str
        ``yzpii1.<key id>.<base64 nonce+ciphertext>`` (AES-256-GCM).
    masked : str
        Text shown in every output, e.g. ``4401**********123X``.
    index : str
        HMAC-SHA256 of the normalised value under a derived key (hex), for duplicate checks.
    """

    token: str
    masked: str
    index: str

    def __repr__(self) -> str:
        return f"ProtectedValue(masked={self.masked!r})"

    def to_dict(self) -> dict[str, str]:
        """Return the stored form."""
        return {"token": self.token, "masked": self.masked, "index": self.index}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ProtectedValue | None:
        """Rebuild from :meth:`to_dict` (None passes through)."""
        if not data:
            return None
        return cls(token=str(data["token"]), masked=str(data["masked"]), index=str(data["index"]))


class PIICipher:
    """Encrypts, decrypts and indexes personal values with keys derived from one secret."""

    def __init__(self, secret: str) -> None:
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            raise InputError(
                f"个人信息加密密钥过短(至少 {MIN_SECRET_LENGTH} 个字符)",
                key="secret_key_weak",
                field="YIZHANGTU_SECRET_KEY",
                hint="用 python -c 'import secrets; print(secrets.token_urlsafe(32))' 生成",
            )
        self._aead = AESGCM(_derive(secret, b"pii-encryption-v1"))
        self._mac = _derive(secret, b"pii-blind-index-v1")
        self.key_id = hashlib.sha256(_derive(secret, b"pii-key-id-v1")).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"PIICipher(key_id={self.key_id!r})"

    def index(self, normalised: str) -> str:
        """Blind index (keyed HMAC, hex) of a normalised value."""
        return hmac.new(self._mac, normalised.encode("utf-8"), hashlib.sha256).hexdigest()

    def encrypt(self, normalised: str) -> str:
        """Ciphertext token of a normalised value (fresh nonce each call)."""
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, normalised.encode("utf-8"), self.key_id.encode("ascii"))
        return f"{_TOKEN_PREFIX}.{self.key_id}.{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def decrypt(self, token: str) -> str:
        """Plain value of a token; ValidationError if the token is foreign or tampered with."""
        parts = str(token).split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_PREFIX:
            raise ValidationError("不是有效的个人信息密文", key="pii_token_invalid")
        if parts[1] != self.key_id:
            raise ValidationError(
                "个人信息由另一密钥加密, 当前密钥无法解密",
                key="pii_key_mismatch",
                hint="使用加密时的 YIZHANGTU_SECRET_KEY",
                data={"token_key_id": parts[1], "key_id": self.key_id},
            )
        raw = base64.urlsafe_b64decode(parts[2].encode())
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], self.key_id.encode("ascii"))
        except InvalidTag:
            raise ValidationError("个人信息密文已损坏或被改动", key="pii_token_tampered") from None
        return plain.decode("utf-8")

    def protect(self, normalised: str, mask: Callable[[str], str | None]) -> ProtectedValue:
        """Encrypt, mask and index a normalised value."""
        return ProtectedValue(
            token=self.encrypt(normalised),
            masked=mask(normalised) or "",
            index=self.index(normalised),
        )


def cipher_from_secret(secret: str | None) -> PIICipher:
    """Cipher for ``secret``; a clear InputError when no key is configured."""
    if not secret:
        raise InputError(
            "未设置个人信息加密密钥 YIZHANGTU_SECRET_KEY, 无法加密或解密身份证号、电话",
            key="secret_key_missing",
            field="YIZHANGTU_SECRET_KEY",
            hint="export YIZHANGTU_SECRET_KEY=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'); "
            "密钥只放在环境变量或密钥管理系统中, 不得提交到代码仓库",
        )
    return PIICipher(secret)
