"""Time budgets of the pipeline's post-deploy steps, from a synthesized cloud assembly: each step's
worst case under its own stage's synthesized settings, against its CodeBuild timeout (CodeBuild stops
a build at its project's timeout and the action fails: CodeBuild API Reference, Project
timeoutInMinutes).

A step's worst case is BUILD_ALLOWANCE_S (the container and the install phase) plus the worst case of
each of its build commands, from the code that command runs: the drill's own budget formula
(lab/gamedays/spec.py, with the stage's queue and DLQ alarms as synthesized), the load test's own
limits (loadtest.run.worst_case_seconds), the smoke script's retries. A command with no known bound
stops the table: a new post-deploy step needs its budget here.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.common.names import EnvVar, Output
from lab.gamedays.drills import DRILLS
from lab.gamedays.spec import AlarmWindow, StageTiming
from lab.localcloud.codepipeline.assembly import StackTemplate, SynthesizedPipeline
from lab.localcloud.codepipeline.model import Action, build_commands
from loadtest.run import build_parser as loadtest_parser
from loadtest.run import worst_case_seconds as loadtest_worst_case
from stage_client.failure_mode import StageGuardrails
from stage_client.target import REPO_ROOT

# Provisioning a small CodeBuild container and the install phase (`pip install -r
# requirements-dev.txt` of the project's pinned tools): an allowance, not a bound; two to three
# minutes are typical.
BUILD_ALLOWANCE_S = 300.0
# One AWS CLI call (a role assumption, a secret, a parameter), a slow answer and a retry included.
AWS_CLI_CALL_S = 60.0
# After a drill's deadline: restoring the failure mode (retried with back-off) and the report.
DRILL_WRAP_UP_S = 60.0
SQS_NAMESPACE = "AWS/SQS"


class UnboundedCommand(ValueError):
    """A post-deploy command whose worst case this module does not know."""


@dataclass(frozen=True)
class CommandBudget:
    command: str
    seconds: float
    how: str


@dataclass(frozen=True)
class StepBudget:
    stage: str
    step: str
    timeout_s: float
    commands: tuple[CommandBudget, ...]
    allowance_s: float = BUILD_ALLOWANCE_S

    @property
    def worst_case_s(self) -> float:
        return self.allowance_s + sum(c.seconds for c in self.commands)

    @property
    def fits(self) -> bool:
        return self.worst_case_s <= self.timeout_s


@dataclass(frozen=True)
class StageSettings:
    """What the drills' waits depend on, read from one stage's synthesized templates."""

    timing: StageTiming
    max_redrives: int
    details: dict[str, Any] = field(default_factory=dict)


def _value(template: dict[str, Any], output: Output) -> Any:
    return (template.get("Outputs") or {}).get(output.value, {}).get("Value")


def _exports(stacks: list[StackTemplate]) -> dict[str, Any]:
    return {
        o["Export"]["Name"]: o["Value"]
        for s in stacks
        for o in s.outputs().values()
        if isinstance(o.get("Export", {}).get("Name"), str)
    }


def _main_queue(stacks: list[StackTemplate]) -> tuple[int, int, Any]:
    """(visibility timeout, maxReceiveCount, the DLQ's QueueName value) of the stage's main queue."""
    queue_ref = dlq_name = None
    for stack in stacks:
        queue_ref = queue_ref or _value(stack.template, Output.QUEUE_URL)
        dlq_name = dlq_name or _value(stack.template, Output.DLQ_NAME)
    if not isinstance(queue_ref, dict) or "Ref" not in queue_ref or dlq_name is None:
        raise UnboundedCommand("the stage outputs no QueueUrl / DlqName: cannot read its queue settings")
    queue = next(s.resources()[queue_ref["Ref"]] for s in stacks if queue_ref["Ref"] in s.resources())
    props = queue.get("Properties") or {}
    receives = int((props.get("RedrivePolicy") or {}).get("maxReceiveCount", 5))
    return int(props.get("VisibilityTimeout", 30)), receives, dlq_name


def _dlq_alarms(stacks: list[StackTemplate], dlq_name: Any) -> list[AlarmWindow]:
    """The SQS alarms whose QueueName dimension is the DLQ (also through a cross-stack import)."""
    exports = _exports(stacks)
    windows = []
    for stack in stacks:
        for alarm in stack.resources("AWS::CloudWatch::Alarm").values():
            props = alarm.get("Properties") or {}
            value = {d["Name"]: d["Value"] for d in props.get("Dimensions") or []}.get("QueueName")
            if isinstance(value, dict) and "Fn::ImportValue" in value:
                value = exports.get(value["Fn::ImportValue"])
            if props.get("Namespace") == SQS_NAMESPACE and value == dlq_name:
                windows.append(
                    AlarmWindow.of(
                        str(props["MetricName"]),
                        int(props["Period"]),
                        int(props["EvaluationPeriods"]),
                        float(props["Threshold"]),
                    )
                )
    return windows


def _max_redrives(stacks: list[StackTemplate]) -> int:
    for stack in stacks:
        for function in stack.resources("AWS::Lambda::Function").values():
            variables = ((function.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
            if EnvVar.MAX_REDRIVES_PER_MESSAGE.value in variables:
                return int(variables[EnvVar.MAX_REDRIVES_PER_MESSAGE.value])
    return StageGuardrails().max_redrives_per_message


def stage_settings(stacks: list[StackTemplate]) -> StageSettings:
    """The main queue's visibility and receive count, the DLQ's alarms and the redrive limit of a
    stage, as its templates declare them."""
    visibility, receives, dlq_name = _main_queue(stacks)
    windows = _dlq_alarms(stacks, dlq_name)
    timing = StageTiming.of(visibility_s=visibility, max_receive_count=receives, dlq_alarms=windows)
    details = {"visibilityTimeout": visibility, "maxReceiveCount": receives, "dlqAlarms": len(windows)}
    return StageSettings(timing, _max_redrives(stacks), details)


def smoke_budget(script: Path, env: dict[str, str]) -> CommandBudget:
    """smoke.sh: each expected call is tried `attempts` times, each bounded by curl's --max-time,
    with a growing pause between attempts."""
    text = script.read_text(encoding="utf-8")
    attempts_default = re.search(r'attempts="\$\{SMOKE_ATTEMPTS:-(\d+)\}"', text)
    retry_default = re.search(r'retry_seconds="\$\{SMOKE_RETRY_SECONDS:-(\d+)\}"', text)
    max_time = re.search(r"--max-time (\d+)", text)
    calls = len(re.findall(r"^expect \d{3} ", text, flags=re.MULTILINE))
    if not (attempts_default and retry_default and max_time and calls):
        raise UnboundedCommand(
            f"{script.name} no longer shows its attempts, pause and --max-time: update its budget"
        )
    attempts = int(env.get("SMOKE_ATTEMPTS", attempts_default.group(1)))
    retry = int(env.get("SMOKE_RETRY_SECONDS", retry_default.group(1)))
    per_call = attempts * int(max_time.group(1)) + retry * sum(range(1, attempts))
    how = f"{calls} calls x ({attempts} attempts x {max_time.group(1)} s + pauses)"
    return CommandBudget(script.name, calls * per_call, how)


def gameday_budget(args: list[str], settings: StageSettings) -> CommandBudget:
    from lab.cli import build_parser  # noqa: PLC0415 - the CLI's own parser, only for gameday commands

    parsed = build_parser().parse_args(args)
    spec = DRILLS[parsed.name]
    if parsed.timeout is not None:
        drill_s, how = float(parsed.timeout), "--timeout"
    else:
        drill_s = spec.budget_s(settings.timing, settings.max_redrives)
        t = settings.timing
        how = (
            f"drill budget: DLQ trip {t.dlq_trip_s:.0f} s, alarms {t.alarm_s:.0f} s + {t.ok_s:.0f} s "
            f"({settings.details})"
        )
    return CommandBudget(f"gameday {parsed.name}", drill_s + DRILL_WRAP_UP_S, how)


def _without_bash(tokens: list[str]) -> list[str]:
    """The script's own tokens: the steps run their scripts as `bash <script>` (pipeline.steps.script)."""
    return tokens[1:] if tokens[:1] == ["bash"] else tokens


def command_budget(command: str, env: dict[str, str], settings: StageSettings | None) -> list[CommandBudget]:
    """The worst case of one build command (in_stage.sh's own calls counted apart)."""
    tokens = _without_bash(shlex.split(command))
    budgets: list[CommandBudget] = []
    if tokens and tokens[0].endswith("in_stage.sh"):
        budgets.append(
            CommandBudget(
                "in_stage.sh", 2 * AWS_CLI_CALL_S, "assume the checks role, read the API credential"
            )
        )
        tokens = _without_bash(tokens[1:])
    if tokens and tokens[0].endswith("smoke.sh"):
        budgets.append(smoke_budget(REPO_ROOT / tokens[0], env))
    elif tokens[:3] == ["python", "-m", "loadtest"]:
        budgets.append(
            CommandBudget(
                "loadtest",
                loadtest_worst_case(loadtest_parser().parse_args(tokens[3:])),
                "run time + stop grace + verify timeout",
            )
        )
    elif tokens[:3] == ["python", "-m", "lab.cli"] and "gameday" in tokens:
        if settings is None:
            raise UnboundedCommand(f"{command}: the stage's settings are unknown")
        budgets.append(gameday_budget(tokens[3:], settings))
    elif tokens[:1] == ["aws"]:
        budgets.append(CommandBudget(" ".join(tokens[:3]), AWS_CLI_CALL_S, "one AWS CLI call"))
    else:
        raise UnboundedCommand(
            f"no time budget for the post-deploy command {command!r}: add one in {__name__}"
        )
    return budgets


def post_deploy_steps(synth: SynthesizedPipeline) -> list[tuple[str, Action]]:
    """CodeBuild actions of stages that deploy CloudFormation stacks: the checks of a deployed stage."""
    steps: list[tuple[str, Action]] = []
    for stage in synth.pipeline.stages:
        if any(a.provider == "CloudFormation" for a in stage.actions):
            steps.extend((stage.name, a) for a in stage.actions if a.provider == "CodeBuild")
    return steps


def step_budgets(synth: SynthesizedPipeline) -> list[StepBudget]:
    budgets = []
    for stage_name, action in post_deploy_steps(synth):
        project = synth.project(action)
        buildspec = synth.buildspec(action)
        env = {v.name: v.value for v in project.environment}
        settings = stage_settings(synth.stage_stacks(stage_name))
        phase = (buildspec.get("phases") or {}).get("build") or {}
        commands = [*build_commands(buildspec), *[str(c) for c in phase.get("finally") or []]]
        parts = [b for command in commands for b in command_budget(command, env, settings)]
        budgets.append(StepBudget(stage_name, action.name, project.timeout_minutes * 60.0, tuple(parts)))
    return budgets


def budget_table(budgets: list[StepBudget]) -> str:
    lines = [f"{'stage':<8} {'step':<20} {'worst case':>11} {'timeout':>9}  fits", "-" * 58]
    for b in budgets:
        fits = "yes" if b.fits else "NO"
        lines.append(
            f"{b.stage:<8} {b.step:<20} {b.worst_case_s / 60:>8.1f} min {b.timeout_s / 60:>5.0f} min  {fits}"
        )
    return "\n".join(lines)
