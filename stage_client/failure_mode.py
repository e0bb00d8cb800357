"""Read, set and reset /ingestion/failure_mode from the operator's side (lab failure-mode ...).

The value format and its guardrails are the handlers' own (functions.common.failure_mode), so
what `lab failure-mode get` shows is what the worker and ingest will do.
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.failure_mode import encode_failure_mode, resolve_failure_mode
from functions.common.names import FAILURE_MODE_PARAMETER, EnvVar, FailureMode, Output
from stage_client.target import Target

DEFAULT_TTL_SECONDS = 300
# The lab never writes a mode that outlives an hour; the handlers also cap it at the stage's own
# FAILURE_MODE_MAX_TTL_SECONDS, which may be shorter.
MAX_TTL_SECONDS = 3600
KNOWN_MODES = tuple(mode.value for mode in FailureMode)


class FailureModeError(RuntimeError):
    """A failure mode cannot be set (unknown mode, bad TTL, reset function failed)."""


@dataclass(frozen=True)
class StageGuardrails:
    """The stage's guardrail settings as deployed on the worker (defaults when not readable)."""

    injection_enabled: bool = True
    max_ttl_seconds: int = 900
    cache_seconds: int = 5
    max_redrives_per_message: int = 3
    source: str = "defaults"


@dataclass(frozen=True)
class FailureModeState:
    """What the parameter holds and what the handlers make of it right now."""

    raw: str
    mode: str
    effective: str
    resolution: str
    expires_at: int | None
    set_by: str | None
    last_modified: float | None
    guardrails_from: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, now: float | None = None) -> str:
        current = time.time() if now is None else now
        text = f"failure_mode {self.mode!r} -> effective {self.effective!r} ({self.resolution})"
        if self.effective != FailureMode.NONE.value and self.expires_at is not None:
            text += f", expires in {max(0, int(self.expires_at - current))}s"
        return text + (f", set by {self.set_by}" if self.set_by else "")


def stage_guardrails(target: Target) -> StageGuardrails:
    """Read the guardrails from the worker's environment; the defaults when the caller may not.

    The deployed function configuration is the truth the handlers run with; a caller without
    lambda:GetFunctionConfiguration (the pipeline's gameday role) gets conservative defaults.
    """
    worker = target.optional_output(Output.WORKER_FUNCTION_NAME)
    redrive = target.optional_output(Output.REDRIVE_FUNCTION_NAME)
    if not worker:
        return StageGuardrails()
    try:
        lambda_client = target.client("lambda")
        env = (
            lambda_client.get_function_configuration(FunctionName=worker)
            .get("Environment", {})
            .get("Variables", {})
        )
        redrive_env: dict[str, str] = {}
        if redrive:
            redrive_env = (
                lambda_client.get_function_configuration(FunctionName=redrive)
                .get("Environment", {})
                .get("Variables", {})
            )
    except (ClientError, BotoCoreError):
        return StageGuardrails()
    defaults = StageGuardrails()
    return StageGuardrails(
        injection_enabled=env.get(EnvVar.FAILURE_INJECTION_ENABLED.value, "true").lower()
        in {"1", "true", "yes", "on"},
        max_ttl_seconds=int(env.get(EnvVar.FAILURE_MODE_MAX_TTL_SECONDS.value, defaults.max_ttl_seconds)),
        cache_seconds=int(env.get(EnvVar.FAILURE_MODE_CACHE_SECONDS.value, defaults.cache_seconds)),
        max_redrives_per_message=int(
            redrive_env.get(EnvVar.MAX_REDRIVES_PER_MESSAGE.value, defaults.max_redrives_per_message)
        ),
        source="worker configuration",
    )


def read_failure_mode(
    target: Target, *, now: float | None = None, guardrails: StageGuardrails | None = None
) -> FailureModeState:
    parameter = target.client("ssm").get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]
    rails = guardrails or stage_guardrails(target)
    modified = parameter.get("LastModifiedDate")
    last_modified = modified.timestamp() if modified is not None else time.time()
    resolved = resolve_failure_mode(
        parameter["Value"],
        last_modified=last_modified,
        now=time.time() if now is None else now,
        max_ttl_seconds=rails.max_ttl_seconds,
        enabled=rails.injection_enabled,
    )
    raw = parameter["Value"]
    return FailureModeState(
        raw=raw,
        mode=_stored_mode(raw),
        effective=resolved.mode.value,
        resolution=resolved.resolution.value,
        expires_at=int(resolved.expires_at) if resolved.expires_at is not None else None,
        set_by=resolved.set_by,
        last_modified=last_modified,
        guardrails_from=rails.source,
    )


def set_failure_mode(
    target: Target,
    mode: FailureMode | str,
    *,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    set_by: str | None = None,
) -> str:
    """Write the JSON form with an expiry, so a forgotten mode switches itself off; returns the value."""
    if str(getattr(mode, "value", mode)) not in KNOWN_MODES:
        raise FailureModeError(f"unknown failure mode {mode!r}: choose one of {', '.join(KNOWN_MODES)}")
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise FailureModeError(f"the TTL must be between 1 and {MAX_TTL_SECONDS} seconds, got {ttl_seconds}")
    value = encode_failure_mode(
        FailureMode(getattr(mode, "value", mode)),
        set_by=set_by or _operator(),
        now=time.time(),
        ttl_seconds=ttl_seconds,
    )
    target.client("ssm").put_parameter(
        Name=FAILURE_MODE_PARAMETER, Value=value, Type="String", Overwrite=True
    )
    return value


def reset_failure_mode(target: Target, *, via_function: bool = False, set_by: str | None = None) -> str:
    """failure_mode none: by invoking the stage's reset function, or by writing the parameter."""
    if not via_function:
        return set_failure_mode(target, FailureMode.NONE, set_by=set_by)
    name = target.output(Output.RESET_FUNCTION_NAME)
    response = target.client("lambda").invoke(
        FunctionName=name, InvocationType="RequestResponse", Payload=b"{}"
    )
    if response.get("FunctionError"):
        payload = response["Payload"].read().decode("utf-8", errors="replace")
        raise FailureModeError(f"reset function {name} failed: {payload}")
    value: str = target.client("ssm").get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"]
    return value


def _stored_mode(raw: str) -> str:
    text = raw.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            return text
        return str(document.get("mode")) if isinstance(document, dict) else text
    return text


def _operator() -> str:
    try:
        return f"lab:{getpass.getuser()}"
    except (KeyError, OSError):
        return "lab"
