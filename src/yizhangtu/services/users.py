"""User accounts, kept in the workspace as records of the collection ``users``.

Each record's key is the user name and its jurisdiction the user's; the body holds the
role, an argon2 password hash, the display name, ``disabled`` and ``epoch`` (bumped to end
every session). Account changes go through the store, so they are audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from yizhangtu.errors import InputError, NotFoundError, PermissionDeniedError
from yizhangtu.services.auth import ROLES, AuthenticationError, Scope, validate_jurisdiction
from yizhangtu.store import Store

__all__ = [
    "RESERVED_COLLECTIONS",
    "USERS",
    "User",
    "add_user",
    "authenticate",
    "get_user",
    "list_users",
    "set_disabled",
    "set_password",
]

#: Collection holding accounts.
USERS = "users"
#: Collections the generic records API never exposes.
#: Collections the generic records API neither reads nor writes: accounts, personal data of
#: the rights registry (encrypted, served masked by its own routes), and capability records
#: whose writes must pass their own checks (policy packs, state machines, AHP consistency).
RESERVED_COLLECTIONS = frozenset(
    {
        USERS,
        "web_table_meta",
        "rights_holders",
        "rights_records",
        "reduction_transfer",
        "reduction_config",
        "renewal_units",
        "renewal_towns",
        "scoring_configs",
        "scoring_results",
    }
)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{2,64}$")
_MIN_PASSWORD = 8
_hasher = PasswordHasher()
_DUMMY: list[str] = []  # a hash to verify against for unknown users (made on first use)


@dataclass(frozen=True)
class User:
    """An account (without its password hash)."""

    username: str
    role: str
    jurisdiction: str
    display_name: str
    disabled: bool
    epoch: int
    version: int
    created_at: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dict(self.__dict__)
        d["role_label"] = ROLES.get(self.role, {}).get("label", self.role)
        return d

    def scope(self) -> Scope:
        """Return the scope of this user's requests."""
        return Scope(username=self.username, role=self.role, jurisdiction=self.jurisdiction)


def _user(rec: Any) -> User:
    d = rec.data
    return User(
        username=rec.key,
        role=str(d.get("role")),
        jurisdiction=str(rec.jurisdiction or d.get("jurisdiction") or ""),
        display_name=str(d.get("display_name") or rec.key),
        disabled=bool(d.get("disabled")),
        epoch=int(d.get("epoch", 0)),
        version=rec.version,
        created_at=d.get("created_at"),
    )


def _check_manager(scope: Scope | None, jurisdiction: str) -> None:
    if scope is None:  # local administration (CLI)
        return
    scope.require("manage_users")
    if not scope.covers(jurisdiction):
        raise PermissionDeniedError(
            f"不能管理辖区 {jurisdiction} 的账号 (你的辖区: {scope.jurisdiction})",
            key="outside_jurisdiction",
            field="jurisdiction",
        )


def add_user(
    store: Store,
    username: str,
    password: str,
    *,
    role: str,
    jurisdiction: str,
    display_name: str | None = None,
    actor: str,
    scope: Scope | None = None,
    hasher: PasswordHasher | None = None,
) -> User:
    """Create an account; ``scope`` is the creating user (None: local administrator).

    ``hasher`` overrides the argon2 parameters (tests use cheap ones; the hash records its
    parameters, so verification follows them).
    """
    if not _NAME.match(username or ""):
        raise InputError(
            f"用户名不合法: {username!r}",
            key="bad_username",
            field="username",
            hint="2–64 个字母、数字、下划线、点或连字符",
        )
    if role not in ROLES:
        raise InputError(
            f"未知角色: {role}", key="bad_role", field="role", hint="可选: " + ", ".join(ROLES)
        )
    jurisdiction = validate_jurisdiction(jurisdiction)
    if len(password or "") < _MIN_PASSWORD:
        raise InputError(f"密码至少 {_MIN_PASSWORD} 位", key="weak_password", field="password")
    _check_manager(scope, jurisdiction)
    if (
        scope is not None
        and role == "city_admin"
        and not (scope.jurisdiction and jurisdiction.startswith(scope.jurisdiction))
    ):
        raise PermissionDeniedError("不能创建辖区外的市级管理员", key="outside_jurisdiction")
    data = {
        "role": role,
        "password_hash": (hasher or _hasher).hash(password),
        "display_name": display_name or username,
        "disabled": False,
        "epoch": 0,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    rec = store.put_record(
        USERS,
        username,
        data,
        expected_version=None,
        actor=actor,
        jurisdiction=jurisdiction,
        action="user.add",
    )
    return _user(rec)


def get_user(store: Store, username: str) -> User:
    """One account; NotFoundError if absent."""
    try:
        return _user(store.get_record(USERS, username))
    except NotFoundError:
        raise NotFoundError(
            f"用户不存在: {username}", key="user_not_found", field="username"
        ) from None


def list_users(store: Store, scope: Scope | None = None) -> list[User]:
    """Accounts (inside the managing user's jurisdiction)."""
    if scope is None:
        return [_user(r) for r in store.list_records(USERS)]
    scope.require("manage_users")
    return [
        _user(r) for r in store.query_records(USERS, jurisdiction_prefixes=scope.record_prefixes())
    ]


def _update(
    store: Store,
    username: str,
    change: dict[str, Any],
    *,
    actor: str,
    scope: Scope | None,
    action: str,
) -> User:
    rec = store.get_record(USERS, username) if username else None
    if rec is None:
        raise NotFoundError(f"用户不存在: {username}", key="user_not_found")
    _check_manager(scope, str(rec.jurisdiction))
    data = dict(rec.data) | change
    data["epoch"] = int(rec.data.get("epoch", 0)) + 1  # every change ends the user's sessions
    return _user(
        store.put_record(
            USERS, username, data, expected_version=rec.version, actor=actor, action=action
        )
    )


def set_disabled(
    store: Store, username: str, disabled: bool, *, actor: str, scope: Scope | None = None
) -> User:
    """Disable (ending every session) or re-enable an account."""
    try:
        return _update(
            store,
            username,
            {"disabled": bool(disabled)},
            actor=actor,
            scope=scope,
            action="user.disable" if disabled else "user.enable",
        )
    except NotFoundError:
        raise NotFoundError(
            f"用户不存在: {username}", key="user_not_found", field="username"
        ) from None


def set_password(
    store: Store, username: str, password: str, *, actor: str, scope: Scope | None = None
) -> User:
    """Change a password (ending every session)."""
    if len(password or "") < _MIN_PASSWORD:
        raise InputError(f"密码至少 {_MIN_PASSWORD} 位", key="weak_password", field="password")
    return _update(
        store,
        username,
        {"password_hash": _hasher.hash(password)},
        actor=actor,
        scope=scope,
        action="user.password",
    )


def authenticate(store: Store, username: str, password: str) -> User:
    """Return the account if the password matches and it is enabled (else 401)."""
    bad = AuthenticationError("用户名或密码错误", key="bad_credentials")
    try:
        rec = store.get_record(USERS, username)
    except NotFoundError:
        if not _DUMMY:
            _DUMMY.append(_hasher.hash("yizhangtu-timing-equaliser"))
        try:  # spend the same time as a real check
            _hasher.verify(_DUMMY[0], password or "")
        except (VerificationError, InvalidHashError):
            pass
        raise bad from None
    try:
        _hasher.verify(str(rec.data.get("password_hash", "")), password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise bad from None
    user = _user(rec)
    if user.disabled:
        raise AuthenticationError("账号已停用", key="account_disabled", hint="请联系管理员")
    return user
