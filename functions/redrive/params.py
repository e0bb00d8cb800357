"""Validation of the redrive API's parameters (query string or JSON body); a ValueError here is a 400.

Parameters: maxMessages 1..10000 (preview default 10, start default 100; start counts messages
moved or quarantined), filterErrorType (alias errorType; one or more comma-separated names.ErrorType
values, or names.NO_ERROR_TYPE "none" for messages whose key has no recorded error type),
minAgeSeconds >= 0 (age from SentTimestamp), perMessageDelayJitter 0..900 seconds (start only).
Unknown parameters are rejected: a misspelt limit must never turn into an unbounded redrive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.common.names import NO_ERROR_TYPE, ErrorType

MAX_MESSAGES_LIMIT = 10_000
MAX_DELAY_SECONDS = 900  # SQS DelaySeconds maximum
MAX_MESSAGE_AGE_SECONDS = 1_209_600  # SQS maximum retention (14 days): no message is older
PREVIEW_DEFAULT_MAX_MESSAGES = 10
START_DEFAULT_MAX_MESSAGES = 100


class InvalidParameters(ValueError):
    pass


FILTER_VALUES = (*(error.value for error in ErrorType), NO_ERROR_TYPE)


@dataclass(frozen=True)
class RedriveParams:
    max_messages: int
    # None: every error type; else the error types selected (NO_ERROR_TYPE for none recorded).
    filter_error_types: frozenset[str] | None = None
    min_age_seconds: int = 0
    per_message_delay_jitter: int = 0

    def selects(self, error_type: str | None) -> bool:
        return self.filter_error_types is None or (error_type or NO_ERROR_TYPE) in self.filter_error_types

    def to_item(self) -> dict[str, Any]:
        return {
            "maxMessages": self.max_messages,
            "filterErrorType": ",".join(sorted(self.filter_error_types)) if self.filter_error_types else None,
            "minAgeSeconds": self.min_age_seconds,
            "perMessageDelayJitter": self.per_message_delay_jitter,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RedriveParams:
        return cls(
            max_messages=int(item["maxMessages"]),
            filter_error_types=_error_types(item.get("filterErrorType")),
            min_age_seconds=int(item.get("minAgeSeconds", 0)),
            per_message_delay_jitter=int(item.get("perMessageDelayJitter", 0)),
        )


def _integer(name: str, raw: Any, *, minimum: int, maximum: int | None, from_query: bool) -> int:
    if from_query and isinstance(raw, str) and raw.strip().isdigit():
        value: Any = int(raw.strip())
    elif not from_query and isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        raise InvalidParameters(f"{name} must be an integer")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise InvalidParameters(f"{name} must be {bound}, got {value}")
    return int(value)


def _error_types(raw: Any) -> frozenset[str] | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise InvalidParameters("filterErrorType must be a string of comma-separated error types")
    chosen = frozenset(part.strip() for part in raw.split(","))
    unknown = sorted(chosen - set(FILTER_VALUES))
    if unknown:
        raise InvalidParameters(
            f"filterErrorType {', '.join(unknown)} unknown; "
            f"allowed (comma-separated): {', '.join(FILTER_VALUES)}"
        )
    return chosen


def _filter(values: Mapping[str, Any]) -> frozenset[str] | None:
    given = {name: _error_types(values.get(name)) for name in ("filterErrorType", "errorType")}
    chosen = {value for value in given.values() if value is not None}
    if len(chosen) > 1:
        raise InvalidParameters("filterErrorType and errorType disagree")
    return next(iter(chosen), None)


def parse_params(values: Mapping[str, Any] | None, *, for_start: bool, from_query: bool) -> RedriveParams:
    values = dict(values or {})
    allowed = {"maxMessages", "filterErrorType", "errorType", "minAgeSeconds"}
    if for_start:
        allowed.add("perMessageDelayJitter")
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise InvalidParameters(
            f"unknown parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    default_max = START_DEFAULT_MAX_MESSAGES if for_start else PREVIEW_DEFAULT_MAX_MESSAGES
    return RedriveParams(
        max_messages=_integer(
            "maxMessages",
            values.get("maxMessages", str(default_max) if from_query else default_max),
            minimum=1,
            maximum=MAX_MESSAGES_LIMIT,
            from_query=from_query,
        ),
        filter_error_types=_filter(values),
        min_age_seconds=_integer(
            "minAgeSeconds",
            values.get("minAgeSeconds", "0" if from_query else 0),
            minimum=0,
            maximum=MAX_MESSAGE_AGE_SECONDS,
            from_query=from_query,
        ),
        per_message_delay_jitter=_integer(
            "perMessageDelayJitter",
            values.get("perMessageDelayJitter", "0" if from_query else 0),
            minimum=0,
            maximum=MAX_DELAY_SECONDS,
            from_query=from_query,
        ),
    )
