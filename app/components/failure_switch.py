"""The break/fix switch: the /ingestion/failure_mode parameter, and how functions read or reset it."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.constructs.lambda_fn import FunctionSettings, LambdaFn
from functions.common import names


def failure_mode_parameter(scope: Construct, construct_id: str) -> ssm.StringParameter:
    """The parameter a drill writes a failure mode to (it starts, and is reset to, `none`)."""
    return ssm.StringParameter(
        scope,
        construct_id,
        parameter_name=names.FAILURE_MODE_PARAMETER,
        string_value=names.FailureMode.NONE.value,
        description="Break/fix lab switch: a failure mode, or JSON {mode, expiresAt, setBy}",
        tier=ssm.ParameterTier.STANDARD,
    )


@dataclass(frozen=True)
class FailureSwitch:
    """The parameter and the guardrails every function that honours failure modes runs with."""

    parameter: ssm.IStringParameter
    cache_seconds: int
    injection_enabled: bool
    max_ttl_seconds: int

    @property
    def environment(self) -> dict[names.EnvVar, str]:
        return {
            names.EnvVar.FAILURE_MODE_PARAMETER: names.FAILURE_MODE_PARAMETER,
            names.EnvVar.FAILURE_MODE_CACHE_SECONDS: str(self.cache_seconds),
            names.EnvVar.FAILURE_INJECTION_ENABLED: str(self.injection_enabled).lower(),
            names.EnvVar.FAILURE_MODE_MAX_TTL_SECONDS: str(self.max_ttl_seconds),
        }

    def grant_read(self, function: LambdaFn) -> None:
        function.allow(["ssm:GetParameter"], [self.parameter.parameter_arn])

    def grant_write(self, function: LambdaFn) -> None:
        function.allow(["ssm:PutParameter"], [self.parameter.parameter_arn])


class ResetFunction(LambdaFn):
    """Sets the failure mode back to none (the runbooks' and the drills' way out)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, functions: FunctionSettings, switch: FailureSwitch
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            settings=functions,
            name="reset",
            handler=names.Handler.RESET,
            description=f"Sets {names.FAILURE_MODE_PARAMETER} back to {names.FailureMode.NONE.value}",
            timeout_seconds=10,
            environment=switch.environment,
        )
        switch.grant_write(self)
