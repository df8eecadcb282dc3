"""Generate the TD/T 1063-style catalogue from the reference CSV and the formula overrides.

Inputs (packaged, under ``yizhangtu/indicators/sources/``):

- ``tdt1063_style_indicator_tree.csv``: copy of ``reference/tdt1063_style_indicator_tree.csv``
  (dimension, category, indicator, input layers, node_bsm, source);
- ``tdt1063_formulas.yaml``: per node_bsm the id, unit, direction and a typed formula, or the
  data that is missing.

Output: ``yizhangtu/indicators/catalogues/tdt1063_style.yaml``. Run::

    python -m yizhangtu.indicators.build_tdt1063            # rewrite the catalogue
    python -m yizhangtu.indicators.build_tdt1063 --check    # exit 1 if it is out of date

The build fails when a CSV row has no override, an override names a different indicator than
the CSV row, or the result does not validate against the catalogue schema.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from yizhangtu.errors import ValidationError
from yizhangtu.indicators.catalogue import catalogue_from_dict

__all__ = ["build_catalogue", "main", "render_catalogue_yaml"]

_HERE = Path(__file__).resolve().parent
DEFAULT_CSV = _HERE / "sources" / "tdt1063_style_indicator_tree.csv"
DEFAULT_FORMULAS = _HERE / "sources" / "tdt1063_formulas.yaml"
DEFAULT_OUT = _HERE / "catalogues" / "tdt1063_style.yaml"

_UNIT_SUFFIX = re.compile(r"\s+(m2|㎡|%|km2)$")


def _clean_name(name: str) -> str:
    return _UNIT_SUFFIX.sub("", name.strip())


def _plain(obj: Any) -> Any:
    # drop YAML anchors/shared references so that the output has no aliases
    return json.loads(json.dumps(obj, ensure_ascii=False))


def build_catalogue(csv_text: str, formulas_text: str) -> dict[str, Any]:
    """Merge the indicator tree CSV with the formula overrides into a catalogue mapping.

    Raises
    ------
    ValidationError
        On a CSV row without override, a name mismatch, or an unused override.
    """
    spec = yaml.safe_load(formulas_text)
    overrides: dict[str, dict[str, Any]] = {str(k): v for k, v in spec["indicators"].items()}
    defaults = spec.get("defaults", {})
    dept_by_cat: dict[str, str] = defaults.get("department_by_category", {})
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    out_inds: list[dict[str, Any]] = []
    used: set[str] = set()
    sources = sorted({r["source"] for r in rows})
    for row in rows:
        bsm = str(row["node_bsm"]).strip()
        name = _clean_name(row["indicator_三级"])
        ov = overrides.get(bsm)
        if ov is None:
            raise ValidationError(
                f"CSV 指标 {name}(node_bsm={bsm}) 在公式配置中没有条目",
                key="tdt_override_missing",
                feature=bsm,
                hint="在 sources/tdt1063_formulas.yaml 中补充该 node_bsm",
            )
        if _clean_name(ov["name"]) != name:
            raise ValidationError(
                f"node_bsm={bsm}: 公式配置的名称 {ov['name']!r} 与 CSV 名称 {name!r} 不一致",
                key="tdt_override_name",
                feature=bsm,
            )
        used.add(bsm)
        category = row["category_二级"].strip()
        layers = [
            x.strip() for x in (row.get("input_data_layers_四级") or "").split("|") if x.strip()
        ]
        if "formula" in ov:
            formula = _plain(ov["formula"])
        else:
            formula = {"kind": "not_computable", "missing": list(ov["missing"])}
        ind: dict[str, Any] = {
            "id": ov["id"],
            "name": name,
            "dimension": row["dimension_一级"].strip(),
            "category": category,
            "unit": str(ov["unit"]),
            "direction": ov["direction"],
            "scope": ov.get("scope", defaults.get("scope", "市域")),
            "formula": formula,
        }
        if layers:
            ind["inputs"] = layers
        ind["source_level"] = ov.get("source_level", defaults.get("source_level", "市级"))
        dept = ov.get("department", dept_by_cat.get(category))
        if dept:
            ind["department"] = dept
        ind["ref"] = f"node_bsm:{bsm}"
        out_inds.append(ind)
    unused = sorted(set(overrides) - used)
    if unused:
        raise ValidationError(
            "公式配置中有 CSV 不存在的 node_bsm: " + ", ".join(unused), key="tdt_override_unused"
        )
    meta = spec["catalogue"]
    cat: dict[str, Any] = {
        "schema_version": 1,
        "id": meta["id"],
        "title": meta["title"],
        "version": str(meta["version"]),
        "jurisdiction": meta.get("jurisdiction", ""),
        "period": dict(meta["period"]),
        "dimensions": list(meta["dimensions"]),
        "source": " ".join(str(meta.get("source", "")).split())
        + " CSV 来源: "
        + "; ".join(sources),
        "description": meta.get("description", ""),
        "generated_by": "yizhangtu.indicators.build_tdt1063 (do not edit by hand)",
        "default_warning": _plain(meta.get("default_warning", {})),
        "indicators": out_inds,
    }
    catalogue_from_dict(cat, origin="build_tdt1063")
    return cat


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_catalogue_yaml(cat: dict[str, Any]) -> str:
    """Deterministic YAML text of a catalogue mapping."""
    head = (
        "# GENERATED by `python -m yizhangtu.indicators.build_tdt1063` from\n"
        "# sources/tdt1063_style_indicator_tree.csv + sources/tdt1063_formulas.yaml.\n"
        "# Do not edit by hand.\n"
    )
    body = yaml.dump(cat, Dumper=_NoAliasDumper, allow_unicode=True, sort_keys=False, width=120)
    return head + body


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = argparse.ArgumentParser(description="生成 TD/T 1063 风格城市体检指标目录")
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    p.add_argument("--formulas", type=Path, default=DEFAULT_FORMULAS)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--check", action="store_true", help="只检查输出是否最新")
    args = p.parse_args(argv)
    text = render_catalogue_yaml(
        build_catalogue(args.csv.read_text("utf-8"), args.formulas.read_text("utf-8"))
    )
    if args.check:
        current = args.out.read_text("utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} 已过期, 请重新生成", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, "utf-8")
    n = text.count("\n- id: ") + text.count("\n  - id: ")
    print(f"已写入 {args.out} ({n} 项指标)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
