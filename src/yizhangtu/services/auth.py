"""Access control without a web framework: roles, jurisdictions, session tokens, login throttling.

A user has one role and one jurisdiction, an administrative-code prefix (``'110105'`` 朝阳区,
``'110105001'`` a street). A :class:`Scope` says what a request may see: published layers
for everyone; for signed-in staff, every layer, with features of layers that carry a
``jurisdiction_field`` limited to their prefix, and records limited the same way. Staff
write only inside their prefix.

Sessions are HMAC-signed tokens (cookie or bearer) that expire, carry a CSRF secret for
cookie writes, and are revoked by logout or by bumping the user's ``epoch`` (disable,
password change).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from yizhangtu.errors import InputError, PermissionDeniedError, YizhangtuError

__all__ = [
    "ANONYMOUS",
    "PERMISSIONS",
    "ROLES",
    "AuthenticationError",
    "LoginRateLimiter",
    "RateLimitedError",
    "Scope",
    "SessionRevocations",
    "TokenPayload",
    "TokenSigner",
    "validate_jurisdiction",
]

#: Permissions of each role. ``read``: staff reading; ``write``: records in their jurisdiction;
#: ``import``: new layer snapshots; ``publish``: catalogue metadata and publication;
#: ``manage_users``: accounts inside their jurisdiction; ``audit``: the whole audit trail.
ROLES: dict[str, dict[str, Any]] = {
    "city_admin": {
        "label": "市级管理员",
        "perms": frozenset(
            {"read", "write", "import", "publish", "manage_users", "audit", "reports"}
        ),
    },
    "district": {"label": "区级用户", "perms": frozenset({"read", "write", "import", "reports"})},
    "township": {"label": "乡镇(街道)用户", "perms": frozenset({"read", "write", "reports"})},
    "department": {"label": "部门用户", "perms": frozenset({"read", "write", "reports"})},
    "public": {"label": "公众", "perms": frozenset()},
}
PERMISSIONS = ("read", "write", "import", "publish", "manage_users", "audit", "reports")
_JURISDICTION = re.compile(r"^\d{2,12}$")


class AuthenticationError(YizhangtuError):
    """Missing, invalid or expired credentials (HTTP 401)."""

    exit_code = 6
    http_status = 401
    default_key = "unauthenticated"


class RateLimitedError(YizhangtuError):
    """Too many attempts (HTTP 429); ``data['retry_after']`` in seconds."""

    exit_code = 6
    http_status = 429
    default_key = "rate_limited"


def validate_jurisdiction(code: str | None) -> str:
    """Return an administrative-code prefix: 2–12 digits."""
    if code is None or not _JURISDICTION.match(str(code)):
        raise InputError(
            f"辖区代码不合法: {code!r}",
            key="bad_jurisdiction",
            field="jurisdiction",
            hint=(
                "用行政区划代码前缀: 2 位省, 4 位市, 6 位区县 (如 110105 朝阳区), "
                "9 位乡镇街道 (如 110105001)"
            ),
        )
    return str(code)


@dataclass(frozen=True)
class Scope:
    """What one request may see and change.

    ``role`` is ``'anonymous'`` without a session. ``jurisdiction`` is the user's prefix.
    """

    username: str | None = None
    role: str = "anonymous"
    jurisdiction: str | None = None

    @property
    def authenticated(self) -> bool:
        """Signed in."""
        return self.username is not None

    @property
    def public_only(self) -> bool:
        """Sees published material only (anonymous visitors and the public role)."""
        return self.role in ("anonymous", "public")

    def can(self, perm: str) -> bool:
        """Whether the role has a permission."""
        return perm in ROLES.get(self.role, {}).get("perms", frozenset())

    def require(self, perm: str) -> None:
        """Raise 401/403 unless the role has ``perm``."""
        if not self.authenticated:
            raise AuthenticationError(
                "请先登录",
                key="login_required",
                hint="POST /api/auth/login 登录, 或使用 Authorization: Bearer 令牌",
            )
        if not self.can(perm):
            label = ROLES.get(self.role, {}).get("label", self.role)
            raise PermissionDeniedError(
                f"{label}无此权限 ({perm})", key="forbidden", hint="请联系市级管理员"
            )

    def layer_visible(self, info: Any) -> bool:
        """Show published layers to everyone, all layers to staff."""
        return bool(info.published) or not self.public_only

    def layer_prefixes(self, info: Any) -> tuple[str, ...] | None:
        """Jurisdiction prefixes to filter a layer's features by, or None for no filter."""
        if info.published or not info.jurisdiction_field or self.public_only:
            return None
        return (self.jurisdiction,) if self.jurisdiction else ()

    def record_prefixes(self) -> tuple[str, ...]:
        """Prefixes of the records the user may see."""
        return (self.jurisdiction,) if self.jurisdiction else ()

    def covers(self, code: str | None) -> bool:
        """Whether an administrative code lies inside the user's jurisdiction."""
        return (
            bool(code) and bool(self.jurisdiction) and str(code).startswith(str(self.jurisdiction))
        )

    def require_covers(self, code: str | None, what: str = "对象") -> None:
        """403 unless ``code`` is inside the user's jurisdiction."""
        if not self.covers(code):
            raise PermissionDeniedError(
                f"{what}不在你的辖区内 (辖区 {self.jurisdiction}, 对象 {code or '未指定辖区'})",
                key="outside_jurisdiction",
                field="jurisdiction",
                hint="只能修改本辖区的数据",
            )

    def cache_key(self) -> tuple[str, str | None]:
        """Return what distinguishes this scope's view of a layer."""
        return (self.role, self.jurisdiction)


ANONYMOUS = Scope()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenPayload:
    """The signed content of a session token."""

    username: str
    epoch: int
    sid: str
    csrf: str
    issued: int
    expires: int


class TokenSigner:
    """Issue and verify HMAC-SHA256 session tokens ``v1.<payload>.<signature>``."""

    def __init__(self, secret: str | bytes, ttl_seconds: int) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._key = hashlib.sha256(b"yizhangtu-session:" + key).digest()
        self.ttl = int(ttl_seconds)

    def issue(
        self, username: str, epoch: int, *, now: float | None = None
    ) -> tuple[str, TokenPayload]:
        """Return a new token for ``username``."""
        t = int(now if now is not None else time.time())
        p = TokenPayload(
            username,
            int(epoch),
            secrets.token_urlsafe(12),
            secrets.token_urlsafe(24),
            t,
            t + self.ttl,
        )
        body = _b64(
            json.dumps(
                {
                    "u": p.username,
                    "e": p.epoch,
                    "s": p.sid,
                    "c": p.csrf,
                    "i": p.issued,
                    "x": p.expires,
                },
                separators=(",", ":"),
            ).encode()
        )
        sig = _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())
        return f"v1.{body}.{sig}", p

    def verify(self, token: str, *, now: float | None = None) -> TokenPayload:
        """Return the payload of a valid, unexpired token; AuthenticationError otherwise."""
        try:
            version, body, sig = token.split(".")
            if version != "v1":
                raise ValueError
            expected = _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())
            if not hmac.compare_digest(expected, sig):
                raise ValueError
            d = json.loads(_unb64(body))
            p = TokenPayload(
                str(d["u"]), int(d["e"]), str(d["s"]), str(d["c"]), int(d["i"]), int(d["x"])
            )
        except (ValueError, KeyError, TypeError, UnicodeError):
            raise AuthenticationError("登录凭据无效, 请重新登录", key="invalid_session") from None
        if (now if now is not None else time.time()) >= p.expires:
            raise AuthenticationError(
                "会话已过期, 请重新登录", key="session_expired", hint="重新登录后再试"
            )
        return p


class SessionRevocations:
    """Session ids revoked by logout, kept until they would have expired (bounded)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._data: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def revoke(self, sid: str, expires: int) -> None:
        """Revoke one session."""
        with self._lock:
            self._data[sid] = expires
            now = time.time()
            while self._data and (
                len(self._data) > self.max_entries or next(iter(self._data.values())) < now
            ):
                self._data.popitem(last=False)

    def revoked(self, sid: str) -> bool:
        """Whether a session was revoked."""
        with self._lock:
            return sid in self._data


class LoginRateLimiter:
    """Failed logins per (client address, user name) in a sliding window, in bounded memory.

    After ``max_failures`` failures within ``window`` seconds, further attempts for that key
    are refused until the oldest failure leaves the window.
    """

    def __init__(
        self, max_failures: int = 5, window: float = 300.0, max_keys: int = 10_000
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._fail: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, ip: str, username: str) -> tuple[str, str]:
        return (ip or "?", (username or "").strip().lower()[:128])

    def check(self, ip: str, username: str, *, now: float | None = None) -> None:
        """Raise RateLimitedError if this key is locked out."""
        t = now if now is not None else time.monotonic()
        k = self._key(ip, username)
        with self._lock:
            hits = [h for h in self._fail.get(k, []) if t - h < self.window]
            if hits:
                self._fail[k] = hits
            else:
                self._fail.pop(k, None)
            if len(hits) >= self.max_failures:
                wait = int(self.window - (t - hits[0])) + 1
                raise RateLimitedError(
                    f"登录失败次数过多, 请 {wait} 秒后再试",
                    key="login_rate_limited",
                    hint="确认用户名和密码; 忘记密码请联系管理员",
                    data={"retry_after": wait},
                )

    def failed(self, ip: str, username: str, *, now: float | None = None) -> None:
        """Record a failure."""
        t = now if now is not None else time.monotonic()
        k = self._key(ip, username)
        with self._lock:
            self._fail.setdefault(k, []).append(t)
            self._fail.move_to_end(k)
            self._fail[k] = self._fail[k][-self.max_failures :]
            while len(self._fail) > self.max_keys:
                self._fail.popitem(last=False)

    def succeeded(self, ip: str, username: str) -> None:
        """Forget a key's failures."""
        with self._lock:
            self._fail.pop(self._key(ip, username), None)

    def __len__(self) -> int:
        return len(self._fail)
