"""Typed configuration: nested dataclasses loaded from YAML with dotted overrides.

Used by every config in the project (pre-training runs, studies). Values are checked against the
annotated field types; unknown keys -- in a file or in an override -- are errors that name the
dotted path, so a typo never silently runs with a default. Overrides look like
``training.max_steps=100``; their values are parsed as YAML (``true``, ``1e-4``, ``[a, b]``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

T = TypeVar("T")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value to the annotated field type; errors name the dotted path."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, (str, int, float)):
            value = [value]  # a single path is a one-element list
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return build(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads "1e6" as a string
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)  # 1e6 in YAML is a float
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "6e-4" as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def build(cls: type[T], data: dict, where: str = "") -> T:
    """Instantiate dataclass ``cls`` from a (nested) mapping, refusing unknown keys."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ValueError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(prefix + k for k in unknown)} "
            f"(valid keys{' in ' + where if where else ''}: {', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted!r}: {k} is not a section")
    node[keys[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like section.key=value (e.g. training.max_steps=100)")
    key, raw = item.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping; syntax errors name the file and line."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ValueError(f"{path}{line}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def resolve_preset(name_or_path: str | Path, preset_dir: Path, kind: str = "preset") -> Path:
    """A YAML path, or the name of a preset in ``preset_dir`` (errors list the valid names)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        return path
    preset = preset_dir / f"{name_or_path}.yaml"
    if not preset.is_file():
        names = sorted(p.stem for p in preset_dir.glob("*.yaml"))
        raise FileNotFoundError(f"unknown {kind} {name_or_path!r}: choose one of {names} or pass a YAML path")
    return preset


def load(cls: type[T], path: str | Path, overrides: Sequence[str] = (), defaults: dict | None = None) -> T:
    """Load dataclass ``cls`` from a YAML file plus ``a.b=value`` overrides."""
    data = read_yaml(path)
    for key, value in (defaults or {}).items():
        data.setdefault(key, value)
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(data, key, value)
    try:
        return build(cls, data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
