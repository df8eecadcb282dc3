"""Access control without a web framework: roles, jurisdictions, session tokens, login throttling.

A user has one role and one jurisdiction, an administrative-code prefix (``'110105'`` 朝阳区,
``'110105001'`` a street). A :class:`Scope` says what a request may see: published layers
for everyone; for signed-in staff, every layer, with features of layers that carry a
``jurisdiction_field`` limited to their prefix, and records limited the same way. Staff
write only inside their prefix.

Sessions are HMAC-signed tokens (cookie or bearer) that expire, carry a CSRF secret for
cookie writes, and are revoked by logout or by bumping the user's ``epoch`` (disable,
password change). Logout revocations and login failures are kept in the workspace
(``yz_runtime_state``, not audited), so every process serving it shares them.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from yizhangtu.errors import (
    AuthenticationError,
    InputError,
    PermissionDeniedError,
    RateLimitedError,
)

if TYPE_CHECKING:
    from yizhangtu.store import Store

T = TypeVar("T")

__all__ = [
    "ANONYMOUS",
    "LOGIN_FAILURE_KIND",
    "PERMISSIONS",
    "REVOKED_KIND",
    "ROLES",
    "AuthenticationError",  # defined in yizhangtu.errors, re-exported
    "LoginRateLimiter",
    "RateLimitedError",  # defined in yizhangtu.errors, re-exported
    "Scope",
    "SessionRevocations",
    "StoreCaller",
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


class StoreCaller(Protocol):
    """Runs ``fn(store, *args)`` on a workspace connection and returns its result.

    :class:`yizhangtu.web.runtime.StoreRunner` is one; anything with this ``call`` will do.
    """

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run ``fn(store, *args)`` and return its result."""
        ...


#: ``yz_runtime_state`` kinds used here.
REVOKED_KIND = "session_revoked"
REVOKED_MARK_KIND = "session_revoked_mark"
LOGIN_FAILURE_KIND = "login_failure"


class SessionRevocations:
    """Session ids revoked by logout, kept until the token would have expired.

    Without a workspace this is one process's memory. With one (``store=`` on each call, or
    a ``runner``), every revocation is written to ``yz_runtime_state`` with the token's
    expiry, so every process serving the workspace refuses the token, also after a restart.
    :meth:`revoked` answers from memory only (it runs on every request); :meth:`refresh`,
    called about once a second, loads what other processes revoked. It reads one marker
    entry that each revocation changes and reloads the list only when it changed.
    """

    def __init__(self, max_entries: int = 100_000, *, runner: StoreCaller | None = None) -> None:
        self._data: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._mark: str | None = None
        self._pruned = 0.0
        self.max_entries = max_entries
        self.runner = runner

    def _remember(self, sid: str, expires: int, now: float) -> None:
        with self._lock:
            self._data[sid] = int(expires)
            self._data.move_to_end(sid)
            while self._data and (
                len(self._data) > self.max_entries or next(iter(self._data.values())) < now
            ):
                self._data.popitem(last=False)

    def revoke(self, sid: str, expires: int, *, store: Store | None = None) -> None:
        """Revoke one session here at once, and in the workspace if there is one."""
        self._remember(sid, expires, time.time())

        def persist(st: Store) -> None:
            st.put_state(REVOKED_KIND, sid, None, expires_at=float(expires))
            st.put_state(REVOKED_MARK_KIND, "latest", {"mark": secrets.token_hex(8)})

        if store is not None:
            persist(store)
        elif self.runner is not None:
            self.runner.call(persist)

    def revoked(self, sid: str) -> bool:
        """Whether a session was revoked (as of the last refresh for other processes)."""
        with self._lock:
            return sid in self._data

    def refresh(self, store: Store, *, force: bool = False) -> int:
        """Load revocations made by other processes; returns how many are known."""
        now = time.time()
        entry = store.get_state(REVOKED_MARK_KIND, "latest")
        mark = str(entry.data.get("mark")) if entry is not None else None
        reload = force or mark != self._mark
        if reload:
            for e in store.list_state(REVOKED_KIND, now=now):
                if e.expires_at is not None:
                    self._remember(e.key, int(e.expires_at), now)
            self._mark = mark
        with self._lock:
            if reload or now - self._pruned > 60:  # expired tokens are refused anyway
                self._data = OrderedDict((k, x) for k, x in self._data.items() if x >= now)
                self._pruned = now
            return len(self._data)

    def __len__(self) -> int:
        return len(self._data)


class LoginRateLimiter:
    """Failed logins per (client address, user name) in a sliding window.

    After ``max_failures`` failures within ``window`` seconds, further attempts for that key
    are refused until the oldest failure leaves the window. Without a workspace the failures
    live in this process's memory (at most ``max_keys`` keys). With one (``store=`` on each
    call, or a ``runner``), each failure is an entry of ``yz_runtime_state`` that expires
    when it leaves the window, so every process serving the workspace counts the same
    failures, and a restart forgets nothing.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        max_keys: int = 10_000,
        *,
        runner: StoreCaller | None = None,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self.runner = runner
        self._fail: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, ip: str, username: str) -> tuple[str, str]:
        return (ip or "?", (username or "").strip().lower()[:128])

    @staticmethod
    def _group(k: tuple[str, str]) -> str:
        return f"{k[0]}|{k[1]}"  # an address never holds "|"

    def _shared(self, store: Store | None, fn: Callable[[Store], T]) -> tuple[bool, T | None]:
        if store is not None:
            return True, fn(store)
        if self.runner is not None:
            return True, self.runner.call(fn)
        return False, None

    def _hits(self, k: tuple[str, str], t: float, store: Store | None) -> list[float]:
        shared, entries = self._shared(
            store, lambda st: st.list_state(LOGIN_FAILURE_KIND, group=self._group(k), now=t)
        )
        if shared:
            return sorted(e.created_at for e in entries or [])
        with self._lock:
            hits = [h for h in self._fail.get(k, []) if t - h < self.window]
            if hits:
                self._fail[k] = hits
            else:
                self._fail.pop(k, None)
            return hits

    def check(
        self, ip: str, username: str, *, now: float | None = None, store: Store | None = None
    ) -> None:
        """Raise RateLimitedError if this key is locked out."""
        t = now if now is not None else time.time()
        hits = self._hits(self._key(ip, username), t, store)
        if len(hits) >= self.max_failures:
            wait = max(1, int(self.window - (t - hits[-self.max_failures])) + 1)
            raise RateLimitedError(
                f"登录失败次数过多, 请 {wait} 秒后再试",
                key="login_rate_limited",
                hint="确认用户名和密码; 忘记密码请联系管理员",
                data={"retry_after": wait},
            )

    def failed(
        self, ip: str, username: str, *, now: float | None = None, store: Store | None = None
    ) -> None:
        """Record a failure."""
        t = now if now is not None else time.time()
        k = self._key(ip, username)
        shared, _ = self._shared(
            store,
            lambda st: st.put_state(
                LOGIN_FAILURE_KIND,
                secrets.token_hex(12),
                None,
                group=self._group(k),
                expires_at=t + self.window,
            ),
        )
        if shared:
            return
        with self._lock:
            self._fail.setdefault(k, []).append(t)
            self._fail.move_to_end(k)
            self._fail[k] = self._fail[k][-self.max_failures :]
            while len(self._fail) > self.max_keys:
                self._fail.popitem(last=False)

    def succeeded(self, ip: str, username: str, *, store: Store | None = None) -> None:
        """Forget a key's failures."""
        k = self._key(ip, username)
        shared, _ = self._shared(
            store, lambda st: st.delete_state(LOGIN_FAILURE_KIND, group=self._group(k))
        )
        if not shared:
            with self._lock:
                self._fail.pop(k, None)

    def __len__(self) -> int:
        """Return the number of keys with failures in the window."""
        shared, n = self._shared(
            None, lambda st: len({e.group for e in st.list_state(LOGIN_FAILURE_KIND)})
        )
        return int(n or 0) if shared else len(self._fail)
