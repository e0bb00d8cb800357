"""The stage's list of public SSM parameters (what the pipeline's pre-flight checks) is exactly what
its templates resolve at deploy time, environment by environment."""

from __future__ import annotations

from app import public_parameters
from tests.infra.synth import STACK_KINDS, SynthesizedStage

SSM_PARAMETER_TYPE = "AWS::SSM::Parameter::Value<String>"
# The one SSM parameter CDK adds to every template: the account's own bootstrap version (cdk deploy
# and the pipeline check it themselves; it is not public).
BOOTSTRAP_VERSION_PREFIX = "/cdk-bootstrap/"


def test_the_listed_public_parameters_are_those_the_templates_resolve(any_stage: SynthesizedStage) -> None:
    resolved = {
        parameter["Default"]
        for kind in STACK_KINDS
        for parameter in any_stage.raw[kind].get("Parameters", {}).values()
        if parameter["Type"] == SSM_PARAMETER_TYPE
        and not parameter["Default"].startswith(BOOTSTRAP_VERSION_PREFIX)
    }
    listed = {parameter.name for parameter in public_parameters(any_stage.config)}
    assert resolved == listed
    assert all(name.startswith("/aws/service/") for name in listed)
    if any_stage.config.powertools_layer_from_ssm:
        assert listed, "the Powertools layer is resolved from SSM but not listed"
