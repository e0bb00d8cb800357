"""FIS on a bare Stack: the extension a target function carries, and the experiment templates."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch

from app.constructs.fis_experiments import (
    ACTION_ADD_DELAY,
    ACTION_ERROR,
    FIS_ENV_CONFIGURATION_LOCATION,
    FIS_ENV_EXEC_WRAPPER,
    FisExperiments,
    FisLambdaTarget,
    configuration_bucket_name,
)
from app.constructs.lambda_fn import LambdaFn
from functions.common import names
from tests.infra.bare_stack import ACCOUNT, FUNCTIONS, REGION, BareStack

BUCKET = configuration_bucket_name(stage_prefix="ingestion-test", account=ACCOUNT, region=REGION)


def target(bare: BareStack) -> LambdaFn:
    return LambdaFn(
        bare.stack, "Fn", settings=FUNCTIONS, name="worker", handler=names.Handler.WORKER,
        description="target", timeout_seconds=30,
    )  # fmt: skip


def test_the_bucket_name_is_deterministic_and_global() -> None:
    assert f"ingestion-test-fis-config-{ACCOUNT}-{REGION}" == BUCKET


def test_an_attached_function_runs_through_the_extension_and_reads_only_its_prefix(bare: BareStack) -> None:
    fn = target(bare)
    fis = FisLambdaTarget(bare.stack, "Fis", bucket_name=BUCKET, architecture="arm64")
    fis.attach(fn)
    props = bare.props(fn.function)
    env = props["Environment"]["Variables"]
    assert env[FIS_ENV_EXEC_WRAPPER] == "/opt/aws-fis/bootstrap"
    assert env[FIS_ENV_CONFIGURATION_LOCATION] == f"arn:aws:s3:::{BUCKET}/FisConfigs/"
    assert len(props["Layers"]) == 2
    assert bare.props(fis.bucket)["BucketName"] == BUCKET
    assert bare.grants(fn) == {
        (frozenset({"s3:GetObject"}), frozenset({f"arn:aws:s3:::{BUCKET}/FisConfigs/*"})),
        (frozenset({"s3:ListBucket"}), frozenset({f"arn:aws:s3:::{BUCKET}"})),
    }


def test_the_templates_delay_beyond_the_timeout_or_fail_and_stop_on_the_alarms(bare: BareStack) -> None:
    fn = target(bare)
    alarm = cloudwatch.Alarm(
        bare.stack,
        "Stop",
        metric=cloudwatch.Metric(namespace="N", metric_name="M"),
        threshold=0,
        evaluation_periods=1,
    )
    experiments = FisExperiments(
        bare.stack,
        "Fis",
        stage_prefix="ingestion-test",
        bucket_name=BUCKET,
        duration_minutes=7,
        target_function_arn=fn.function.function_arn,
        target_timeout_seconds=30,
        stop_alarms=[alarm],
    )
    templates = {
        t["Properties"]["Actions"]["inject"]["ActionId"]: t["Properties"]
        for t in bare.resources("AWS::FIS::ExperimentTemplate").values()
    }
    assert set(templates) == {ACTION_ADD_DELAY, ACTION_ERROR}
    delay = templates[ACTION_ADD_DELAY]["Actions"]["inject"]["Parameters"]
    assert (delay["startupDelayMilliseconds"], delay["duration"]) == ("35000", "PT7M")
    for template in templates.values():
        assert [bare.ref(s["Value"]) for s in template["StopConditions"]] == [bare.arn(alarm)]
        assert bare.ref(template["RoleArn"]) == bare.arn(experiments.role)
    assert bare.props(experiments.role)["RoleName"] == "ingestion-test-fis-experiments"
