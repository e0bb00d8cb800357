"""The failure switch on a bare Stack: the parameter, what readers are told, the reset function."""

from __future__ import annotations

from app.components.failure_switch import FailureSwitch, ResetFunction, failure_mode_parameter
from functions.common import names
from tests.infra.bare_stack import ACCOUNT, FUNCTIONS, REGION, BareStack


def test_the_switch_starts_at_none_and_the_reset_function_may_only_write_it(bare: BareStack) -> None:
    parameter = failure_mode_parameter(bare.stack, "Switch")
    switch = FailureSwitch(parameter=parameter, cache_seconds=1, injection_enabled=False, max_ttl_seconds=300)
    reset = ResetFunction(bare.stack, "Reset", functions=FUNCTIONS, switch=switch)
    props = bare.props(parameter)
    assert (props["Name"], props["Value"], props["Type"]) == (
        names.FAILURE_MODE_PARAMETER,
        names.FailureMode.NONE.value,
        "String",
    )
    arn = f"arn:AWS::Partition:ssm:{REGION}:{ACCOUNT}:parameter{bare.logical_id(parameter)}"
    assert bare.grants(reset) == {(frozenset({"ssm:PutParameter"}), frozenset({arn}))}
    env = bare.props(reset.function)["Environment"]["Variables"]
    assert {key.value: value for key, value in switch.environment.items()}.items() <= env.items()
    assert env[names.EnvVar.FAILURE_INJECTION_ENABLED.value] == "false"
    assert env[names.EnvVar.FAILURE_MODE_CACHE_SECONDS.value] == "1"
