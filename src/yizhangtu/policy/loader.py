"""Load, list and validate policy packs (YAML + JSON Schema shipped with the package)."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from yizhangtu.errors import FileFormatError, NotFoundError, PolicyError
from yizhangtu.policy.pack import PolicyPack, check_value_kind
from yizhangtu.policy.rules import PackProblem, RuleRegistry

__all__ = [
    "PackSummary",
    "list_packs",
    "load_pack",
    "pack_from_mapping",
    "packaged_dir",
    "registry_for",
    "schema",
    "schema_units",
    "validate_mapping",
    "validate_pack",
]


def packaged_dir() -> Traversable:
    """Directory of the packs shipped with yizhangtu."""
    return files("yizhangtu") / "policies"


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return (packaged_dir() / "schema" / "policy-pack.schema.json").read_text(encoding="utf-8")


def schema() -> dict[str, Any]:
    """Return the policy-pack JSON Schema."""
    return json.loads(_schema_text())


@dataclass(frozen=True)
class PackSummary:
    """One entry of :func:`list_packs`."""

    id: str
    version: str
    title: str
    module: str
    jurisdiction: str
    effective: str
    expires: str | None
    file: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return dict(self.__dict__)


def _isoify(obj: Any) -> Any:
    """YAML turns 2023-01-10 into a date; keep dates as ISO strings for the schema and hash."""
    if isinstance(obj, datetime):
        return obj.date().isoformat()
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return {str(k): _isoify(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_isoify(v) for v in obj]
    return obj


def _read_yaml(text: str, where: str) -> Any:
    try:
        return _isoify(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise FileFormatError(
            f"政策包不是有效的 YAML: {exc}",
            key="policy_yaml",
            file=where,
            hint="检查缩进、冒号和引号",
        ) from None


def registry_for(module: str) -> RuleRegistry | None:
    """Return the rule registry of ``module`` (``yizhangtu.<module>.rules.RULES``), or None."""
    try:
        mod = importlib.import_module(f"yizhangtu.{module}.rules")
    except ModuleNotFoundError:
        return None
    reg = getattr(mod, "RULES", None)
    return reg if isinstance(reg, RuleRegistry) else None


def _path_str(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(根)"


def validate_mapping(data: Any, *, check_rules: bool = True) -> list[PackProblem]:
    """Problems of pack content already parsed from YAML (empty list: valid).

    Checks the JSON Schema, then value kinds against units, date order, and, when the
    pack's module has a rule registry, rule ids, required parameters, units and messages.
    """
    problems: list[PackProblem] = []
    if not isinstance(data, Mapping):
        return [PackProblem("(根)", "政策包顶层须为映射(键: 值)", "policy_schema")]
    data = _isoify(data)
    validator = jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = _path_str(err.absolute_path)
        message = err.message
        if err.validator == "not" and list(err.absolute_path)[-1:] == ["value"]:
            message = "value 为空; 只有标明 required_from_user: true 的参数可以留空"
        elif err.validator == "required" and "clause" in err.message:
            message = (
                '缺少 clause(条款引用, 如 "004 (十)"); 本地设定的参数须标明 local_choice: true'
            )
        problems.append(PackProblem(where, message, "policy_schema"))
    if problems:
        return problems
    eff = date.fromisoformat(data["effective"])
    exp = date.fromisoformat(data["expires"]) if data.get("expires") else None
    if exp is not None and exp < eff:
        problems.append(
            PackProblem("expires", f"失效日期 {exp} 早于生效日期 {eff}", "policy_dates")
        )
    for name, spec in data["parameters"].items():
        where = f"parameters.{name}"
        problem = check_value_kind(spec.get("value"), spec["unit"])
        if problem:
            problems.append(PackProblem(f"{where}.value", problem, "policy_param_value"))
        f0, f1 = spec.get("effective_from"), spec.get("effective_to")
        if f0 and f1 and date.fromisoformat(f1) < date.fromisoformat(f0):
            problems.append(PackProblem(where, f"参数适用期 {f0} 至 {f1} 顺序颠倒", "policy_dates"))
        if spec.get("required_from_user") and spec.get("value") is None:
            problems.append(
                PackProblem(
                    where, f"参数 {name} 须由用户设定(当前为空)", "policy_param_required", "warning"
                )
            )
    if check_rules and not any(p.severity == "error" for p in problems):
        registry = registry_for(data["module"])
        if registry is None:
            problems.append(
                PackProblem(
                    "module",
                    f"模块 {data['module']} 没有规则库, 未检查规则",
                    "policy_module",
                    "warning",
                )
            )
        else:
            problems.extend(registry.check_pack(PolicyPack.from_content(data)))
    return problems


def validate_pack(path: str | os.PathLike[str]) -> list[PackProblem]:
    """Validate the pack file at ``path``; returns problems (errors and warnings)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"找不到政策包文件 {p}", key="policy_file_missing", file=str(p))
    data = _read_yaml(p.read_text(encoding="utf-8"), str(p))
    return validate_mapping(data)


def pack_from_mapping(data: Any, *, path: str | None = None) -> PolicyPack:
    """Build a pack from parsed content, raising PolicyError if it has errors."""
    problems = validate_mapping(data)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        first = errors[0]
        raise PolicyError(
            f"政策包无效({len(errors)} 处问题), 首个: {first.where}: {first.message}",
            key="policy_invalid",
            file=path,
            field=first.where,
            data={"problems": [p.to_dict() for p in errors]},
            hint="运行 yizhangtu policy validate 查看全部问题",
        )
    return PolicyPack.from_content(_isoify(data), path=path)


def _packaged_files() -> list[Traversable]:
    d = packaged_dir()
    return sorted(
        (f for f in d.iterdir() if f.is_file() and f.name.endswith((".yaml", ".yml"))),
        key=lambda f: f.name,
    )


def load_pack(name_or_path: str | os.PathLike[str]) -> PolicyPack:
    """Load a packaged pack by id (``dongguan-2023``) or any pack file by path.

    Raises
    ------
    NotFoundError
        No such pack.
    PolicyError
        The pack does not validate.
    """
    text = os.fspath(name_or_path)
    p = Path(text)
    if p.suffix in (".yaml", ".yml") or os.sep in text or p.is_file():
        if not p.is_file():
            raise NotFoundError(f"找不到政策包文件 {p}", key="policy_file_missing", file=str(p))
        data = _read_yaml(p.read_text(encoding="utf-8"), str(p))
        return pack_from_mapping(data, path=str(p))
    for f in _packaged_files():
        data = _read_yaml(f.read_text(encoding="utf-8"), f.name)
        if f.name.rsplit(".", 1)[0] == text or (
            isinstance(data, Mapping) and data.get("id") == text
        ):
            return pack_from_mapping(data, path=str(f))
    raise NotFoundError(
        f"没有名为 {text} 的政策包",
        key="policy_not_found",
        hint="可用: " + ", ".join(s.id for s in list_packs()),
    )


def list_packs() -> list[PackSummary]:
    """Packs shipped with yizhangtu."""
    out = []
    for f in _packaged_files():
        pack = pack_from_mapping(_read_yaml(f.read_text(encoding="utf-8"), f.name), path=str(f))
        out.append(
            PackSummary(
                id=pack.id,
                version=pack.version,
                title=pack.title,
                module=pack.module,
                jurisdiction=str(pack.jurisdiction.get("name", "")),
                effective=pack.effective.isoformat(),
                expires=pack.expires.isoformat() if pack.expires else None,
                file=f.name,
                hash=pack.hash,
            )
        )
    return out


def schema_units() -> set[str]:
    """Units the schema admits (must equal :data:`UNIT_KINDS`)."""
    return set(schema()["$defs"]["unit"]["enum"])
