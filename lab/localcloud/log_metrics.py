"""What CloudWatch derives from log lines, as pure functions: embedded metric format (EMF) records and
metric filters (JSON filter patterns and plain terms). The agent applies them to the function logs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Datum:
    """One value for PutMetricData."""

    namespace: str
    name: str
    value: float
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    timestamp_ms: int

    def to_put(self) -> dict[str, Any]:
        return {
            "MetricName": self.name,
            "Value": self.value,
            "Unit": self.unit,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
            "Timestamp": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC),
        }


def _json_object(message: str) -> dict[str, Any] | None:
    text = message.strip()
    if not text.startswith("{"):
        # Lambda's text format prefixes "<timestamp>\t<requestId>\t<level>\t"; the JSON is after.
        brace = text.find("{")
        if brace < 0:
            return None
        text = text[brace:]
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def emf_datums(message: str, timestamp_ms: int) -> list[Datum]:
    """The metrics of one EMF log line (what Powertools Metrics prints), else []."""
    record = _json_object(message)
    meta = record.get("_aws") if record is not None else None
    if record is None or not isinstance(meta, dict):
        return []
    timestamp = int(meta.get("Timestamp") or timestamp_ms)
    return [
        datum
        for directive in meta.get("CloudWatchMetrics") or []
        for datum in _directive_datums(record, directive, timestamp)
    ]


def _directive_datums(record: Mapping[str, Any], directive: Mapping[str, Any], timestamp: int) -> list[Datum]:
    """One CloudWatchMetrics directive: each metric's value(s) once per dimension set."""
    namespace = str(directive.get("Namespace", ""))
    dimension_sets = directive.get("Dimensions") or [[]]
    datums = []
    for metric in directive.get("Metrics") or []:
        name = metric.get("Name")
        raw = record.get(name) if name is not None else None
        if raw is None:
            continue
        unit = str(metric.get("Unit", "None"))
        for value in raw if isinstance(raw, list) else [raw]:
            for dimension_set in dimension_sets:
                dims = tuple((str(d), str(record[d])) for d in dimension_set if d in record)
                datums.append(Datum(namespace, str(name), float(value), unit, dims, timestamp))
    return datums


# --- Metric filter patterns ----------------------------------------------------------------
_JSON_TERM = re.compile(
    r"""\s*\$(?P<selector>(?:\.[A-Za-z0-9_\-]+|\[\d+\])+)\s*
        (?:
            (?P<op>=|!=|>=|<=|>|<)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^\s&|)]+)
          | IS\s+(?P<is>TRUE|FALSE|NULL)
          | NOT\s+EXISTS(?P<not_exists>)
        )\s*""",
    re.VERBOSE | re.IGNORECASE,
)


class FilterPatternError(ValueError):
    """A filter pattern outside the supported grammar."""


def _select(record: Any, selector: str) -> tuple[bool, Any]:
    current = record
    for part in re.findall(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]", selector):
        key, index = part
        if key:
            if not isinstance(current, dict) or key not in current:
                return False, None
            current = current[key]
        else:
            if not isinstance(current, list) or int(index) >= len(current):
                return False, None
            current = current[int(index)]
    return True, current


def _term_matches(record: dict[str, Any], match: re.Match[str]) -> bool:
    """One `$.selector <op> value` (or IS / NOT EXISTS) term against a parsed log record."""
    found, value = _select(record, match["selector"])
    wants_absent = match["not_exists"] is not None
    if wants_absent or not found:
        return wants_absent and not found
    if match["is"]:
        expected = {"TRUE": True, "FALSE": False, "NULL": None}[match["is"].upper()]
        return value is expected
    op, raw = match["op"], match["value"]
    if raw.startswith('"'):
        return _negated_if(op, _quoted_equals(value, op, raw))
    if raw == "*" and op in ("=", "!="):
        return _negated_if(op, _has_scalar(value))
    try:
        number = float(raw)
    except ValueError:
        # Unquoted strings are allowed on equality (e.g. { $.level = ERROR }).
        return _negated_if(op, str(value) == raw)
    return _compare_number(value, op, number)


def _negated_if(op: str, equal: bool) -> bool:
    """The result of an equality term: `=` keeps it, `!=` negates it."""
    return equal if op == "=" else not equal


def _has_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list) and value is not None


def _quoted_equals(value: Any, op: str, raw: str) -> bool:
    """`= "text"` with `*` wildcards; `= "*"` is the documented "field exists with a value" form."""
    text = json.loads(raw)
    if op not in ("=", "!="):
        raise FilterPatternError(f"{op} needs a number, not {raw}")
    if not _has_scalar(value):
        return False
    if text == "*":
        return True
    pattern = "^" + ".*".join(re.escape(chunk) for chunk in text.split("*")) + "$"
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    return re.match(pattern, shown) is not None


def _compare_number(value: Any, op: str, number: float) -> bool:
    """A numeric comparison; a field that is not a number only satisfies `!=`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return op == "!="
    return {
        "=": value == number,
        "!=": value != number,
        ">": value > number,
        "<": value < number,
        ">=": value >= number,
        "<=": value <= number,
    }[op]


def _json_pattern_matches(record: dict[str, Any], pattern: str) -> bool:
    """Evaluate `{ term && term || (term) }` with && binding tighter than ||."""
    tokens = _tokenize(pattern)
    position = 0

    def parse_or() -> bool:
        nonlocal position
        result = parse_and()
        while position < len(tokens) and tokens[position] == "||":
            position += 1
            result = parse_and() or result
        return result

    def parse_and() -> bool:
        nonlocal position
        result = parse_atom()
        while position < len(tokens) and tokens[position] == "&&":
            position += 1
            result = parse_atom() and result
        return result

    def parse_atom() -> bool:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "(":  # noqa: S105 - a parenthesis token, not a secret
            result = parse_or()
            position += 1  # ")"
            return result
        if not isinstance(token, re.Match):
            raise FilterPatternError(f"unexpected {token!r} in {pattern!r}")
        return _term_matches(record, token)

    result = parse_or()
    if position != len(tokens):
        raise FilterPatternError(f"trailing input in {pattern!r}")
    return result


def _tokenize(pattern: str) -> list[Any]:
    body = pattern.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise FilterPatternError(f"not a JSON filter pattern: {pattern!r}")
    body = body[1:-1]
    tokens: list[Any] = []
    position = 0
    while position < len(body):
        if body[position].isspace():
            position += 1
        elif body.startswith(("&&", "||"), position):
            tokens.append(body[position : position + 2])
            position += 2
        elif body[position] in "()":
            tokens.append(body[position])
            position += 1
        else:
            match = _JSON_TERM.match(body, position)
            if match is None:
                raise FilterPatternError(f"cannot parse {body[position:]!r} in {pattern!r}")
            tokens.append(match)
            position = match.end()
    return tokens


def filter_matches(pattern: str, message: str) -> dict[str, Any] | bool:
    """Does a log line match a metric filter pattern? For JSON patterns the parsed record is
    returned (truthy) so that $.field metric values and dimensions can be read from it."""
    stripped = pattern.strip()
    if not stripped:
        return True
    if stripped.startswith("{"):
        record = _json_object(message)
        if record is None:
            return False
        return record if _json_pattern_matches(record, stripped) else False
    return _terms_match(stripped, message)


def _terms_match(pattern: str, message: str) -> bool:
    """Plain terms: every term (or quoted phrase) must occur, none of the `-term`s may; a leading
    "?" on every term makes them alternatives."""
    words = [quoted or bare for quoted, bare in re.findall(r'"([^"]*)"|(\S+)', pattern)]
    if words and all(w.startswith("?") for w in words):
        return any(w[1:] in message for w in words)
    return all(_term_holds(word, message) for word in words)


def _term_holds(word: str, message: str) -> bool:
    if word.startswith("-"):
        # A lone "-" excludes nothing.
        return len(word) == 1 or word[1:] not in message
    return word in message


def filter_datums(metric_filter: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> list[Datum]:
    """Datums that one DescribeMetricFilters entry produces from log events."""
    datums = []
    pattern = str(metric_filter.get("filterPattern") or "")
    for event in events:
        matched = filter_matches(pattern, str(event.get("message", "")))
        if not matched:
            continue
        record = matched if isinstance(matched, dict) else {}
        for transformation in metric_filter.get("metricTransformations") or []:
            value = _transform_value(str(transformation.get("metricValue", "1")), record)
            if value is None:
                continue
            dims = []
            for key, source in sorted((transformation.get("dimensions") or {}).items()):
                dim_value = _transform_value_raw(str(source), record)
                if dim_value is None:
                    break
                dims.append((str(key), str(dim_value)))
            else:
                datums.append(
                    Datum(
                        str(transformation["metricNamespace"]),
                        str(transformation["metricName"]),
                        value,
                        str(transformation.get("unit") or "None"),
                        tuple(dims),
                        int(event.get("timestamp", 0)),
                    )
                )
    return datums


def _transform_value_raw(source: str, record: Mapping[str, Any]) -> Any:
    if source.startswith("$."):
        found, value = _select(record, source[1:])
        return value if found and not isinstance(value, dict | list) else None
    return source


def _transform_value(source: str, record: Mapping[str, Any]) -> float | None:
    raw = _transform_value_raw(source, record)
    try:
        return float(raw) if raw is not None and not isinstance(raw, bool) else None
    except ValueError:
        return None
