"""The base of every configuration model (stage and pipeline): camelCase keys, unknown keys refused,
bounds on the fields, cross-field rules grouped by concern, and one error listing every broken rule.

A model is the one definition of its keys: the field, its type, its bounds, its default (the secure
one) and its description, from which the configuration tables are generated (app/config/doc.py).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

import annotated_types
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

M = TypeVar("M", bound="ConfigModel")

RULES_ERROR = "config_rules"


class ConfigError(ValueError):
    """The context does not describe a valid configuration; the message lists every broken rule."""


@dataclass(frozen=True)
class Violation:
    """One broken cross-field rule: the camelCase key to change (dotted when nested) and the rule."""

    key: str
    rule: str


def rule_group(method: Callable[[Any], Iterable[Violation]]) -> Callable[[Any], Iterable[Violation]]:
    """Mark a model method as one concern's cross-field rules (queue, API, alarms, ...): it yields a
    Violation per broken rule. Every group runs, so every broken rule is reported at once."""
    method.__config_rule_group__ = True  # type: ignore[attr-defined]
    return method


class ConfigModel(BaseModel):
    """A frozen, strictly typed configuration object read from cdk.json context (camelCase keys)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        extra="forbid",
        frozen=True,
    )
    _rule_groups: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        groups = [
            name
            for klass in reversed(cls.__mro__)
            for name, member in vars(klass).items()
            if getattr(member, "__config_rule_group__", False)
        ]
        cls._rule_groups = tuple(dict.fromkeys(groups))

    @model_validator(mode="after")
    def _check_rule_groups(self) -> Self:
        violations = [v for name in self._rule_groups for v in getattr(self, name)()]
        if violations:
            raise PydanticCustomError(
                RULES_ERROR,
                "{count} configuration rule(s) broken",
                {"count": len(violations), "violations": violations},
            )
        return self


# --- Validation with one report ----------------------------------------------------------------


def validate_config(model: type[M], raw: Mapping[str, Any], *, where: str, title: str) -> M:
    """Validate `raw` (cdk.json keys) into `model`, or raise ConfigError listing every problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = list(error.errors())
    if not any(p["type"] == RULES_ERROR for p in problems):
        problems += _rules_beside_invalid_keys(model, raw, problems)
    raise ConfigError(f"{title}:\n  - " + "\n  - ".join(_report_lines(model, problems, where)))


def _rules_beside_invalid_keys(
    model: type[ConfigModel], raw: Mapping[str, Any], problems: list[ErrorDetails]
) -> list[ErrorDetails]:
    """Pydantic checks the fields first and runs the cross-field rules only when every field is
    valid. To report both at once, the rules run again with each invalid key left at its default (a
    rule that reads an invalid key is then checked against its default; the report names the key
    anyway, and a violation of the invalid key itself is not repeated)."""
    try:
        model.model_validate(_without(raw, [p["loc"] for p in problems]))
    except ValidationError as retry:
        invalid = {_dotted(p["loc"]) for p in problems}
        found = []
        for rules in retry.errors():
            ctx = rules.get("ctx") or {}
            kept = [v for v in ctx.get("violations", ()) if v.key not in invalid]
            if rules["type"] == RULES_ERROR and kept:
                found.append(ErrorDetails(**{**rules, "ctx": {**ctx, "violations": kept}}))
        return found
    return []


def _without(raw: Mapping[str, Any], locs: Sequence[tuple[int | str, ...]]) -> dict[str, Any]:
    """A copy of `raw` without the keys at `locs` (a list item's error drops the whole list)."""
    repaired: dict[str, Any] = _deep_copy(raw)
    for loc in locs:
        path = list(loc[: next((i for i, part in enumerate(loc) if isinstance(part, int)), len(loc))])
        node: Any = repaired
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path:
            node.pop(path[-1], None)
    return repaired


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _deep_copy(item) for key, item in value.items()}
    return value


def _report_lines(model: type[ConfigModel], problems: list[ErrorDetails], where: str) -> Iterator[str]:
    for problem in problems:
        if problem["type"] == RULES_ERROR:
            prefix = _dotted(problem["loc"])
            for violation in (problem.get("ctx") or {})["violations"]:
                key = f"{prefix}.{violation.key}" if prefix else violation.key
                yield f"{where}.{key}: {violation.rule}"
        else:
            yield f"{where}.{_dotted(problem['loc'])}: {_describe(model, problem)}"


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(model: type[ConfigModel], problem: ErrorDetails) -> str:
    """One pydantic error as a rule in words, with the value that broke it.

    By hand because pydantic's messages speak Python ("Input should be a valid integer") and omit
    the other bound; whoever edits cdk.json reads the rule in its terms, with the bounds or choices.
    """
    kind, value, ctx = problem["type"], problem.get("input"), problem.get("ctx") or {}
    field = field_at(model, problem["loc"])
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        parent = model_at(model, problem["loc"][:-1])
        known = ", ".join(sorted(keys(parent))) if parent else ""
        return f"unknown key (known keys: {known})" if known else "unknown key"
    if kind == "value_error":
        return str(ctx.get("error", problem["msg"]))
    if kind == "literal_error" and field is not None:
        choices = literal_choices(field.annotation)
        return f"must be one of {', '.join(map(str, choices))}, got {value!r}"
    if kind in {"greater_than_equal", "less_than_equal"} and field is not None:
        return f"must be {range_text(field)}, got {value!r}"
    expected = _EXPECTED.get(kind)
    return f"must be {expected}, got {value!r}" if expected else str(problem["msg"])


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
}


# --- Introspection shared with the table generator -----------------------------------------------


def keys(model: type[ConfigModel]) -> list[str]:
    """The model's cdk.json keys, in declaration order."""
    return [field.alias or name for name, field in model.model_fields.items()]


def field_at(model: type[ConfigModel], loc: tuple[int | str, ...]) -> FieldInfo | None:
    """The field that an error location points at (through nested models; list items -> the list)."""
    current: type[ConfigModel] | None = model
    field: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None:
            return None
        field = next(
            (f for name, f in current.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return None
        current = nested_model(field)
    return field


def model_at(model: type[ConfigModel], loc: tuple[int | str, ...]) -> type[ConfigModel] | None:
    if not loc:
        return model
    field = field_at(model, loc)
    return nested_model(field) if field is not None else None


def nested_model(field: FieldInfo) -> type[ConfigModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, ConfigModel) else None


def literal_choices(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        if choices := literal_choices(arg):
            return choices
    return ()


def range_text(field: FieldInfo) -> str:
    """ "between 1 and 1000", ">= 0" or "<= 29": the field's bounds in words."""
    low, high = bounds(field)
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    return f">= {low:g}" if low is not None else f"<= {high:g}"


def bounds(field: FieldInfo) -> tuple[float | None, float | None]:
    """The field's inclusive lower and upper bounds (ge/le), if it declares any."""
    low = high = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
    return low, high  # type: ignore[return-value]
