"""Typed errors for yizhangtu.

Every error carries a stable English ``key`` (for scripts), a Chinese message (for users),
the file, feature and field it concerns where known, and a suggested fix. Each class maps to
a CLI exit code and an HTTP status, so adapters never invent their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuthenticationError",
    "CRSError",
    "ConflictError",
    "EncodingError",
    "ErrorDetail",
    "FileFormatError",
    "GeometryError",
    "InputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PolicyError",
    "QCError",
    "RateLimitedError",
    "StoreError",
    "UnsupportedTypeError",
    "ValidationError",
    "YizhangtuError",
]


@dataclass(frozen=True)
class ErrorDetail:
    """Where an input problem is: file, feature (row index or id) and field."""

    file: str | None = None
    feature: str | int | None = None
    field: str | None = None


class YizhangtuError(Exception):
    """Base of every error that a user can meet.

    Parameters
    ----------
    message : str
        Chinese message shown to the user.
    key : str, optional
        Stable English identifier, e.g. ``"crs_missing"``.
    file, feature, field : optional
        Location of the problem.
    hint : str, optional
        Suggested fix, in Chinese.
    data : dict, optional
        Extra machine-readable facts.
    """

    exit_code: int = 1
    http_status: int = 400
    default_key: str = "error"

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        file: str | None = None,
        feature: str | int | None = None,
        field: str | None = None,
        hint: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key or self.default_key
        self.detail = ErrorDetail(file=file, feature=feature, field=field)
        self.hint = hint
        self.data = dict(data or {})

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        out: dict[str, Any] = {
            "error": self.key,
            "type": type(self).__name__,
            "message": self.message,
        }
        for name in ("file", "feature", "field"):
            value = getattr(self.detail, name)
            if value is not None:
                out[name] = value
        if self.hint:
            out["hint"] = self.hint
        if self.data:
            out["data"] = self.data
        return out

    def __str__(self) -> str:
        parts = [self.message]
        loc = []
        if self.detail.file is not None:
            loc.append(f"文件: {self.detail.file}")
        if self.detail.feature is not None:
            loc.append(f"要素: {self.detail.feature}")
        if self.detail.field is not None:
            loc.append(f"字段: {self.detail.field}")
        if loc:
            parts.append("(" + "; ".join(loc) + ")")
        if self.hint:
            parts.append(f"建议: {self.hint}")
        return " ".join(parts)


class InputError(YizhangtuError):
    """Bad user input (files, parameters)."""

    exit_code = 2
    http_status = 400
    default_key = "bad_input"


class FileFormatError(InputError):
    """A file that cannot be read: corrupt, truncated, empty or of an unknown format."""

    default_key = "file_format"


class EncodingError(InputError):
    """Attribute text that cannot be decoded."""

    default_key = "encoding"


class CRSError(InputError):
    """A missing, wrong or ambiguous coordinate reference system."""

    default_key = "crs"


class GeometryError(InputError):
    """Invalid, empty or mixed geometry."""

    default_key = "geometry"


class ValidationError(InputError):
    """Values that break a schema or a business rule on input."""

    http_status = 422
    default_key = "validation"


class QCError(InputError):
    """Quality control found blocking problems; ``data['report']`` holds the findings."""

    http_status = 422
    default_key = "qc_failed"


class PayloadTooLargeError(InputError):
    """An upload or request body over the configured size (HTTP 413)."""

    http_status = 413
    default_key = "upload_too_large"


class UnsupportedTypeError(InputError):
    """An upload of a type the import does not take, or whose content lies about it (HTTP 415)."""

    http_status = 415
    default_key = "unsupported_type"


class PolicyError(YizhangtuError):
    """A policy pack that is invalid, incomplete, expired or lacks a parameter."""

    exit_code = 3
    http_status = 422
    default_key = "policy"


class NotFoundError(YizhangtuError):
    """A layer, snapshot, record or object that does not exist."""

    exit_code = 4
    http_status = 404
    default_key = "not_found"


class ConflictError(YizhangtuError):
    """A write that lost an optimistic-locking race or breaks uniqueness."""

    exit_code = 5
    http_status = 409
    default_key = "conflict"


class AuthenticationError(YizhangtuError):
    """Missing, invalid, expired or revoked credentials (HTTP 401)."""

    exit_code = 6
    http_status = 401
    default_key = "unauthenticated"


class RateLimitedError(YizhangtuError):
    """Too many attempts (HTTP 429); ``data['retry_after']`` in seconds."""

    exit_code = 6
    http_status = 429
    default_key = "rate_limited"


class PermissionDeniedError(YizhangtuError):
    """An action outside the user's role or jurisdiction."""

    exit_code = 6
    http_status = 403
    default_key = "forbidden"


class StoreError(YizhangtuError):
    """The workspace itself is unreadable or inconsistent."""

    exit_code = 7
    http_status = 500
    default_key = "store"
