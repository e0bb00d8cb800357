"""How a drill injects its fault: the SSM failure_mode switch, or an AWS FIS experiment.

Drills never ask which injector they have: each injector says what it can drive, how long its
change takes to be live, and where its fault leaves evidence (methods of the Injector protocol).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from functions.common.names import FIS_TEMPLATE_NAME_TAG, FailureMode, FisExperiment, Output
from lab.gamedays.steps import settle_cache
from stage_client.failure_mode import MAX_TTL_SECONDS, read_failure_mode, reset_failure_mode, set_failure_mode
from stage_client.target import Target

if TYPE_CHECKING:
    from lab.gamedays.runner import DrillContext
    from lab.gamedays.spec import DrillSpec

T = TypeVar("T")

# The drills that have a FIS template in the stage, and which one.
FIS_EXPERIMENT_BY_MODE: dict[FailureMode, FisExperiment] = {
    FailureMode.SLOW_DOWNSTREAM: FisExperiment.SLOW_DOWNSTREAM,
    FailureMode.RANDOM_FAIL_P30: FisExperiment.RANDOM_FAIL_P30,
}
FIS_TERMINAL_STATES = frozenset({"completed", "stopped", "failed", "cancelled"})


class InjectorError(RuntimeError):
    """The fault cannot be injected this way on this target (e.g. FIS on the local cloud)."""


class Injector(Protocol):
    def inject(self, ctx: DrillContext, mode: FailureMode, *, ttl_seconds: int) -> dict[str, Any]: ...

    def restore(self, ctx: DrillContext) -> dict[str, Any]: ...

    def refresh(self, ctx: DrillContext) -> None:
        """Called while a drill waits: keep a long fault alive."""

    def settle(self, ctx: DrillContext, why: str) -> None:
        """Return once an injection or a restore is live in every warm function container."""

    def evidence(self, *, in_handler: T, around_handler: T) -> T:
        """Pick the drill's observation that fits where this fault acts: inside the handler (which
        then records it: state annotations, EMF counters, failure events) or around it (only the
        platform's AWS/Lambda metrics see it)."""
        ...


class InjectorType(Protocol):
    """An injector class: its name in messages, what it drives, how it is made for a target."""

    @property
    def label(self) -> str: ...

    def can_drive(self, spec: DrillSpec) -> bool: ...

    def for_target(self, target: Target) -> Injector: ...


@dataclass
class SsmInjector:
    """The break/fix switch: /ingestion/failure_mode, always written with an expiry."""

    label: ClassVar[str] = "SSM"
    # What a drill asked for and until when, so a drill longer than the stage's max TTL can keep
    # its fault on by rewriting it (a dead drill stops rewriting and the mode expires by itself).
    _active: tuple[FailureMode, int, float] | None = None
    _written_at: float = 0.0

    def inject(self, ctx: DrillContext, mode: FailureMode, *, ttl_seconds: int) -> dict[str, Any]:
        ttl = max(1, min(ttl_seconds, ctx.guardrails.max_ttl_seconds, MAX_TTL_SECONDS))
        set_failure_mode(ctx.target, mode, ttl_seconds=ttl, set_by=f"gameday:{ctx.name}")
        state = read_failure_mode(ctx.target, guardrails=ctx.guardrails)
        if state.effective != mode.value:
            raise InjectorError(
                f"failure_mode {mode.value} was written but resolves to {state.effective!r} "
                f"({state.resolution}): is failure injection disabled on this stage?"
            )
        # Only a fault the drill wants for longer than one TTL is kept alive.
        wanted_until = time.time() + ttl_seconds
        self._active = (mode, ttl, wanted_until) if ttl_seconds > ttl else None
        self._written_at = time.time()
        return {"mode": mode.value, "ttl_s": ttl, "expiresAt": state.expires_at}

    def refresh(self, ctx: DrillContext) -> None:
        if self._active is None:
            return
        mode, ttl, wanted_until = self._active
        now = time.time()
        if now >= wanted_until:
            self._active = None
        elif now - self._written_at >= ttl / 2:
            set_failure_mode(ctx.target, mode, ttl_seconds=ttl, set_by=f"gameday:{ctx.name}")
            self._written_at = now
            ctx.progress(f"refreshed {mode.value} for another {ttl}s (the stage's max TTL)")

    def restore(self, ctx: DrillContext) -> dict[str, Any]:
        self._active = None
        reset_failure_mode(ctx.target, set_by=f"gameday:{ctx.name}")
        return {"via": "ssm"}

    def settle(self, ctx: DrillContext, why: str) -> None:
        # The handlers cache the switch for a few seconds.
        settle_cache(ctx, why)

    def evidence(self, *, in_handler: T, around_handler: T) -> T:
        return in_handler

    @classmethod
    def can_drive(cls, spec: DrillSpec) -> bool:
        return True

    @classmethod
    def for_target(cls, target: Target) -> SsmInjector:
        return cls()


@dataclass
class FisInjector:
    """Starts the stage's FIS experiment template for the drill's fault (AWS only)."""

    label: ClassVar[str] = "FIS"
    experiment_id: str | None = None
    template_id: str | None = None
    history: list[str] = field(default_factory=list)

    def inject(self, ctx: DrillContext, mode: FailureMode, *, ttl_seconds: int) -> dict[str, Any]:
        experiment = FIS_EXPERIMENT_BY_MODE.get(mode)
        if experiment is None:
            raise InjectorError(f"no FIS experiment drives {mode.value}; use --injector ssm")
        fis = ctx.target.client("fis")
        self.template_id = find_template(ctx.target, experiment)
        started = fis.start_experiment(
            clientToken=str(uuid.uuid4()),
            experimentTemplateId=self.template_id,
            tags={"Drill": ctx.name},
        )["experiment"]
        self.experiment_id = started["id"]
        state = ctx.wait_until(
            f"FIS experiment {self.experiment_id} to run",
            lambda: self._state_if({"running", *FIS_TERMINAL_STATES}, fis),
            timeout_s=120,
            interval_s=2,
        )
        if state != "running":
            raise InjectorError(
                f"FIS experiment {self.experiment_id} ended as {state} before the drill could start"
            )
        return {"experimentId": self.experiment_id, "templateId": self.template_id, "state": state}

    def restore(self, ctx: DrillContext) -> dict[str, Any]:
        detail: dict[str, Any] = {"via": "fis"}
        if self.experiment_id:
            fis = ctx.target.client("fis")
            state = self._state(fis)
            if state not in FIS_TERMINAL_STATES:
                fis.stop_experiment(id=self.experiment_id)
                state = "stopping"
            detail.update(experimentId=self.experiment_id, state=state)
        # The drill did not touch the SSM switch, but a drill's promise is "ends with no fault on".
        if read_failure_mode(ctx.target, guardrails=ctx.guardrails).effective != FailureMode.NONE.value:
            reset_failure_mode(ctx.target, set_by=f"gameday:{ctx.name}")
            detail["failure_mode"] = "reset to none"
        return detail

    def refresh(self, ctx: DrillContext) -> None:
        """The experiment runs for the template's own duration; nothing to keep alive."""

    def settle(self, ctx: DrillContext, why: str) -> None:
        """The experiment acts once it runs (inject waits for that); nothing is cached."""

    def evidence(self, *, in_handler: T, around_handler: T) -> T:
        # The FIS Lambda actions act before or instead of our handler: it records nothing.
        return around_handler

    @classmethod
    def can_drive(cls, spec: DrillSpec) -> bool:
        return spec.fis

    @classmethod
    def for_target(cls, target: Target) -> FisInjector:
        if target.is_local:
            # Refuse before anything is touched.
            find_template(target, FisExperiment.SLOW_DOWNSTREAM)
        return cls()

    def _state(self, fis: Any) -> str:
        state = str(fis.get_experiment(id=self.experiment_id)["experiment"]["state"]["status"])
        self.history.append(state)
        return state

    def _state_if(self, wanted: set[str], fis: Any) -> str | None:
        state = self._state(fis)
        return state if state in wanted else None


def find_template(target: Target, experiment: FisExperiment) -> str:
    """The id of the stage's template for `experiment`: tag Name ends with the slug, and it targets
    this stage's worker (so another stage's template in the same account is never started)."""
    if target.is_local:
        raise InjectorError(
            "AWS FIS is AWS-only: the local cloud has no Fault Injection Service. "
            "Run the drill with --injector ssm (the default), "
            "or against a deployed stage (--target stage:<Name>)."
        )
    worker = target.output(Output.WORKER_FUNCTION_NAME)
    fis = target.client("fis")
    candidates: list[str] = []
    token: str | None = None
    while True:
        page = fis.list_experiment_templates(**({"nextToken": token} if token else {}))
        for summary in page.get("experimentTemplates", []):
            name = summary.get("tags", {}).get(FIS_TEMPLATE_NAME_TAG, "")
            if name.endswith(f"-{experiment.value}"):
                candidates.append(summary["id"])
        token = page.get("nextToken")
        if not token:
            break
    for template_id in candidates:
        template = fis.get_experiment_template(id=template_id)["experimentTemplate"]
        arns = [arn for t in template.get("targets", {}).values() for arn in t.get("resourceArns", [])]
        if any(arn.endswith(f":function:{worker}") for arn in arns):
            return template_id
    raise InjectorError(
        f"no FIS experiment template tagged {FIS_TEMPLATE_NAME_TAG}=*-{experiment.value} targets {worker}: "
        "is fisEnabled set for this stage?"
    )


INJECTORS: dict[str, InjectorType] = {"ssm": SsmInjector, "fis": FisInjector}


def injector_type(kind: str) -> InjectorType:
    try:
        return INJECTORS[kind]
    except KeyError:
        raise InjectorError(f"unknown injector {kind!r}: use {' or '.join(INJECTORS)}") from None


def make_injector(kind: str, target: Target) -> Injector:
    return injector_type(kind).for_target(target)
