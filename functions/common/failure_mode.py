"""The /ingestion/failure_mode switch: cached read with its guardrails, and the writer.

Value format: a plain mode ("poison_payload") or JSON {"mode": ..., "expiresAt": <epoch s>,
"setBy": ...}. A mode is honoured only while injection is enabled, the mode is known, its
expiresAt (if any) is in the future and the parameter is younger than the maximum TTL (so a plain
value expires at LastModifiedDate + max TTL). Anything else resolves to "none", logged, never raised.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from functions.common.names import FailureMode
from functions.common.observability import fields, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import BaseProvider

DEFAULT_CACHE_SECONDS = 5
DEFAULT_MAX_TTL_SECONDS = 3600
DEFAULT_TTL_SECONDS = 300


class Resolution(StrEnum):
    ACTIVE = "active"
    NONE = "none"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    DISABLED = "disabled"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class ResolvedFailureMode:
    mode: FailureMode
    resolution: Resolution
    raw: str | None = None
    expires_at: float | None = None
    set_by: str | None = None


def _parse_stored(text: str) -> tuple[Any, float | None, str | None] | None:
    """(mode, expiresAt, setBy) from a plain or JSON value; None when the JSON form is malformed."""
    if not text.startswith("{"):
        return text, None, None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    expiry = document.get("expiresAt")
    if expiry is not None and (
        isinstance(expiry, bool) or not isinstance(expiry, int | float) or not math.isfinite(expiry)
    ):
        return None
    set_by = document.get("setBy")
    return (
        document.get("mode"),
        None if expiry is None else float(expiry),
        set_by if isinstance(set_by, str) else None,
    )


def resolve_failure_mode(
    raw: str, *, last_modified: float, now: float, max_ttl_seconds: float, enabled: bool = True
) -> ResolvedFailureMode:
    """Apply the guardrails to one stored value (pure: no clock, no AWS)."""
    if not enabled:
        return ResolvedFailureMode(FailureMode.NONE, Resolution.DISABLED, raw)
    parsed = _parse_stored(raw.strip())
    if parsed is None:
        return ResolvedFailureMode(FailureMode.NONE, Resolution.UNKNOWN, raw)
    mode_text, expires_at, set_by = parsed
    try:
        mode = FailureMode(mode_text)
    except ValueError:
        return ResolvedFailureMode(FailureMode.NONE, Resolution.UNKNOWN, raw, expires_at, set_by)
    if mode is FailureMode.NONE:
        return ResolvedFailureMode(FailureMode.NONE, Resolution.NONE, raw, expires_at, set_by)
    hard_limit = last_modified + max_ttl_seconds
    effective_expiry = hard_limit if expires_at is None else min(expires_at, hard_limit)
    if now >= effective_expiry:
        return ResolvedFailureMode(FailureMode.NONE, Resolution.EXPIRED, raw, effective_expiry, set_by)
    return ResolvedFailureMode(mode, Resolution.ACTIVE, raw, effective_expiry, set_by)


class FailureModeReader:
    """The current failure mode, read through a short cache; never raises.

    Powertools caches a value it read, not a failure: while SSM throttles or is unreachable every
    call would make its own GetParameter (with the SDK's retries). A failed read is cached here for
    the same period, so a container makes at most one read per period, whatever the outcome.
    """

    def __init__(
        self,
        provider: BaseProvider | None,
        *,
        parameter_name: str,
        enabled: bool,
        cache_seconds: int = DEFAULT_CACHE_SECONDS,
        max_ttl_seconds: int = DEFAULT_MAX_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._provider = provider
        self._parameter_name = parameter_name
        self._enabled = enabled
        self._cache_seconds = cache_seconds
        self._max_ttl_seconds = max_ttl_seconds
        self._clock = clock
        self._last_reported: tuple[str | None, Resolution] | None = None
        self._unreadable: ResolvedFailureMode | None = None
        self._unreadable_until = 0.0

    def current(self) -> ResolvedFailureMode:
        if not self._enabled or self._provider is None:
            # Injection disabled: the parameter is not even read (prod needs no chaos permissions).
            return self._report(ResolvedFailureMode(FailureMode.NONE, Resolution.DISABLED))
        # Imported here: Powertools' parameters utility is loaded only where injection is enabled
        # (functions.common.parameter_provider), never at a function's cold start in prod.
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError  # noqa: PLC0415

        now = self._clock()
        if self._unreadable is not None and now < self._unreadable_until:
            return self._report(self._unreadable)
        try:
            stored = self._provider.get(self._parameter_name, max_age=self._cache_seconds)
        except GetParameterError as error:
            self._unreadable = ResolvedFailureMode(FailureMode.NONE, Resolution.UNREADABLE, str(error))
            self._unreadable_until = now + self._cache_seconds
            return self._report(self._unreadable)
        self._unreadable = None
        assert isinstance(stored, dict)
        resolved = resolve_failure_mode(
            stored["value"],
            last_modified=stored["lastModified"],
            now=now,
            max_ttl_seconds=self._max_ttl_seconds,
        )
        return self._report(resolved)

    def _report(self, resolved: ResolvedFailureMode) -> ResolvedFailureMode:
        # Logged once per change of value or outcome: the reader runs once per record.
        signature = (resolved.raw, resolved.resolution)
        if signature != self._last_reported:
            self._last_reported = signature
            level = (
                logger.warning
                if resolved.resolution in {Resolution.UNKNOWN, Resolution.UNREADABLE}
                else logger.info
            )
            level(
                "failure mode resolved",
                extra=fields(
                    FAILURE_MODE=resolved.mode.value,
                    RESOLUTION=resolved.resolution.value,
                    RAW_VALUE=resolved.raw,
                    EXPIRES_AT=resolved.expires_at,
                    SET_BY=resolved.set_by,
                ),
            )
        return resolved


def encode_failure_mode(mode: FailureMode, *, set_by: str, now: float, ttl_seconds: int | None) -> str:
    """The JSON value written by the reset function and the lab CLI."""
    document: dict[str, Any] = {"mode": mode.value, "setBy": set_by, "setAt": int(now)}
    if mode is not FailureMode.NONE:
        document["expiresAt"] = int(now + (DEFAULT_TTL_SECONDS if ttl_seconds is None else ttl_seconds))
    return json.dumps(document, separators=(",", ":"))


def write_failure_mode(
    client: Any,
    parameter_name: str,
    mode: FailureMode,
    *,
    set_by: str,
    ttl_seconds: int | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    value = encode_failure_mode(mode, set_by=set_by, now=clock(), ttl_seconds=ttl_seconds)
    client.put_parameter(Name=parameter_name, Value=value, Type="String", Overwrite=True)
    return value
