"""Generates the configuration tables of the documentation from the configuration models.

A document holds a table between two markers naming the model it shows:

    <!-- config-table app.config:StageConfig -->
    ...generated...
    <!-- end config-table -->

`python -m app.config.doc [FILE ...]` rewrites every such block (docs/configuration.md by default);
with --check it changes nothing and exits 1 when a block differs from its model (the infra tests run
the check).
The marker names the model, so this module imports no model itself.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from app.config.base import ConfigModel, bounds, literal_choices, nested_model

CONFIGURATION_DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BLOCK = re.compile(
    r"(?P<open><!-- config-table (?P<model>[\w.]+:\w+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- end config-table -->)",
    re.DOTALL,
)


def load_model(reference: str) -> type[ConfigModel]:
    """`package.module:Class` -> the model class."""
    module_name, _, class_name = reference.partition(":")
    model = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(model, type) and issubclass(model, ConfigModel)):
        raise TypeError(f"{reference} is not a configuration model")
    return model


def render_table(model: type[ConfigModel]) -> str:
    """One row per key (nested keys dotted): its default, what it accepts and what it means."""
    lines = ["| Key | Default | Accepts | Meaning |", "| --- | --- | --- | --- |"]
    lines += [
        f"| `{key}` | {_default(field)} | {_accepts(field)} | {field.description or ''} |"
        for key, field in _rows(model)
    ]
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    """`text` with every config-table block regenerated from the model its marker names."""
    return BLOCK.sub(
        lambda m: f"{m['open']}{render_table(load_model(m['model']))}{m['close']}",
        text,
    )


def _rows(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        nested = nested_model(field)
        if nested is not None:
            yield from _rows(nested, f"{key}.")
        else:
            yield key, field


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(f"`{item}`" for item in value) + "]"
    if isinstance(value, str):
        return f"`{value}`"
    return _number(value) if isinstance(value, int | float) else str(value)


def _accepts(field: FieldInfo) -> str:
    parts: list[str] = []
    annotation = field.annotation
    if _is_bool(annotation):
        parts.append("true, false")
    if choices := literal_choices(annotation):
        parts.append(", ".join(f"`{choice}`" for choice in choices))
    low, high = bounds(field)
    if low is not None or high is not None:
        parts.append(f"{_number(low)}..{_number(high)}")
    item_rules = [rule for arg in _tuple_items(annotation) for rule in _rules(arg)]
    if item_rules:
        parts.append("a list of: " + "; ".join(item_rules))
    elif _tuple_items(annotation):
        parts.append("a list")
    else:
        # Pydantic moves a field's own Annotated checks to its metadata; Optional keeps them inside.
        parts += _metadata_rules(field.metadata) + _rules(annotation)
    return "; ".join(parts)


def _rules(annotation: Any) -> list[str]:
    """The rules in words of the checks attached to a type (through Optional and Annotated)."""
    if metadata := getattr(annotation, "__metadata__", ()):
        return _metadata_rules(metadata)
    return [rule for arg in typing.get_args(annotation) if arg is not type(None) for rule in _rules(arg)]


def _metadata_rules(metadata: Sequence[Any]) -> list[str]:
    rules = [getattr(getattr(item, "func", None), "__config_rule__", None) for item in metadata]
    return [re.sub(r"^must (be |look like )?", "", rule) for rule in rules if rule]


def _tuple_items(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) is tuple:
        return tuple(arg for arg in typing.get_args(annotation) if arg is not Ellipsis)
    return ()


def _is_bool(annotation: Any) -> bool:
    return annotation is bool or bool in typing.get_args(annotation)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.config.doc", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=[CONFIGURATION_DOC])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is stale")
    args = parser.parse_args(argv)
    stale = []
    for path in args.files:
        text = path.read_text(encoding="utf-8")
        if not BLOCK.search(text):
            parser.error(f"{path} has no config-table block")
        rendered = render(text)
        if rendered != text:
            stale.append(path)
            if not args.check:
                path.write_text(rendered, encoding="utf-8")
    if args.check and stale:
        print(f"stale configuration tables in {', '.join(map(str, stale))}: run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
