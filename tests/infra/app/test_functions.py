"""Functions: runtime and code, the worker's event source, and IAM limited to the exact calls and ARNs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.constructs.functions_code import BUNDLED_REQUIREMENTS, REPO_ROOT
from app.constructs.lambda_fn import (
    LambdaFn,
    powertools_layer_arn,
    powertools_layer_parameter,
    powertools_package_version,
)
from functions.common import names
from tests.infra.synth import Grant, Synthesis, SynthesizedStage

XRAY: Grant = (frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}), frozenset({"*"}))


def _functions(stage: SynthesizedStage) -> dict[str, LambdaFn]:
    """The stage's functions (the event-log function with the event audit only)."""
    compute = stage.stage.compute
    functions = {
        "ingest": compute.ingest,
        "worker": compute.worker,
        "relay": compute.relay,
        "redrive": compute.redrive,
        "reset": compute.reset,
        "event-log": compute.event_log,
    }
    return {name: fn for name, fn in functions.items() if fn is not None}


def _parameter_arn(stage: SynthesizedStage) -> str:
    parameter = stage.logical_id(stage.stage.state.failure_mode_parameter)
    return f"arn:AWS::Partition:ssm:{stage.config.region}:{stage.config.account}:parameter{parameter}"


def _grants(*pairs: tuple[set[str], set[str]]) -> set[Grant]:
    return {(frozenset(actions), frozenset(resources)) for actions, resources in pairs}


def _expected_grants(stage: SynthesizedStage) -> dict[str, set[Grant]]:
    state, compute, config = stage.stage.state, stage.stage.compute, stage.config
    queue, dlq, quarantine = stage.arn(state.queue), stage.arn(state.dlq), stage.arn(state.quarantine_queue)
    table, jobs = stage.arn(state.state_table), stage.arn(state.jobs_table)
    parameter = _parameter_arn(stage)
    delivery_dlq = stage.arn(compute.events.delivery_dlq)
    bus = stage.arn(compute.events.bus)
    stream = f"{stage.logical_id(state.state_table)}.StreamArn"
    redrive_self = (
        f"arn:AWS::Partition:lambda:{config.region}:{config.account}:function:{config.prefix}-redrive"
    )
    expected = {
        "ingest": _grants(
            ({"sqs:SendMessage"}, {queue}),
            ({"ssm:GetParameter"}, {parameter}),
            # a client key's record, read to refuse a conflicting payload with 409
            ({"dynamodb:GetItem"}, {table}),
        ),
        "worker": _grants(
            # one BatchGetItem per batch, then conditional writes
            ({"dynamodb:BatchGetItem", "dynamodb:UpdateItem"}, {table}),
            ({"ssm:GetParameter"}, {parameter}),
            # the failure event of an idempotency conflict
            ({"events:PutEvents"}, {bus}),
            ({"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}, {queue}),
            # an IdempotencyConflict is parked in the DLQ at once
            ({"sqs:SendMessage"}, {dlq}),
        ),
        "redrive": _grants(
            (
                {
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                },
                {dlq},
            ),
            ({"sqs:SendMessage"}, {queue, quarantine}),
            ({"dynamodb:GetItem", "dynamodb:UpdateItem"}, {table}),
            ({"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"}, {jobs}),
            ({"lambda:InvokeFunction"}, {redrive_self}),
            # The on-failure destination of the asynchronous job invocations (granted by CDK).
            ({"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}, {delivery_dlq}),
        ),
        "relay": _grants(
            ({"events:PutEvents"}, {bus}),
            (
                {
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                },
                {stream},
            ),
            # its event source mapping's on-failure destination
            ({"sqs:SendMessage"}, {stage.arn(state.relay_failures)}),
        ),
        "reset": _grants(({"ssm:PutParameter"}, {parameter})),
        "event-log": _grants(({"sqs:SendMessage"}, {delivery_dlq})),
    }
    for name, fn in _functions(stage).items():
        expected[name] |= {
            (frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}), frozenset({stage.arn(fn.log_group)})),
            *((XRAY,) if config.tracing_enabled else ()),
        }
    if stage.config.fis_enabled:
        bucket = f"{config.prefix}-fis-config-{config.account}-{config.region}"
        expected["worker"] |= _grants(
            ({"s3:GetObject"}, {f"arn:aws:s3:::{bucket}/FisConfigs/*"}),
            ({"s3:ListBucket"}, {f"arn:aws:s3:::{bucket}"}),
        )
    return expected


@pytest.mark.parametrize("function", ["ingest", "worker", "relay", "redrive", "reset", "event-log"])
def test_each_role_holds_exactly_the_listed_calls_on_exactly_these_arns(
    local: SynthesizedStage, dev: SynthesizedStage, function: str
) -> None:
    for stage in (local, dev):
        role = _functions(stage)[function].role
        assert stage.role_grants(role) == _expected_grants(stage)[function], (
            f"{stage.config.env_name}/{function}"
        )


def test_with_a_cmk_the_roles_may_use_only_that_key(prod: SynthesizedStage) -> None:
    key = prod.arn(prod.stage.state.key)  # type: ignore[arg-type]
    for name, fn in _functions(prod).items():
        grants = prod.role_grants(fn.role)
        kms = {grant for grant in grants if any(action.startswith("kms:") for action in grant[0])}
        # reset only writes a String parameter, which the stage key does not encrypt
        assert bool(kms) == (name != "reset"), name
        assert all(resources == {key} for _, resources in kms), name
        assert grants - kms == _expected_grants(prod)[name], name
    ingest_kms = {
        g for g in prod.role_grants(prod.stage.compute.ingest.role) if "kms:GenerateDataKey" in g[0]
    }
    assert ingest_kms == _grants(({"kms:GenerateDataKey", "kms:Decrypt"}, {key}))


def test_no_statement_anywhere_has_a_wildcard_action(any_stage: SynthesizedStage) -> None:
    for template in any_stage.raw.values():
        for resource in template["Resources"].values():
            documents = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
            if resource["Type"] == "AWS::IAM::Policy":
                documents.append(resource["Properties"]["PolicyDocument"])
            for document in documents:
                for statement in document["Statement"]:
                    actions = (
                        statement["Action"]
                        if isinstance(statement["Action"], list)
                        else [statement["Action"]]
                    )
                    assert not [a for a in actions if a == "*" or a.endswith(":*")], statement


def test_the_only_resource_wildcard_is_xray_where_the_stage_traces(any_stage: SynthesizedStage) -> None:
    for fn in _functions(any_stage).values():
        wildcards = {grant for grant in any_stage.role_grants(fn.role) if "*" in grant[1]}
        assert wildcards == ({XRAY} if any_stage.config.tracing_enabled else set())


def test_functions_share_runtime_layer_tracing_and_explicit_sizes(any_stage: SynthesizedStage) -> None:
    config = any_stage.config
    layer: object = powertools_layer_arn(
        region=config.region, architecture=config.architecture, version=config.powertools_layer_version
    )
    if config.powertools_layer_from_ssm:
        # The layer of the release pinned in requirements-runtime.txt, resolved from its public parameter.
        parameters = {
            logical_id: parameter
            for kind in ("functions", "api")
            for logical_id, parameter in any_stage.raw[kind].get("Parameters", {}).items()
            if parameter.get("Default") == powertools_layer_parameter(config.architecture)
        }
        assert parameters, "no SSM-typed parameter for the Powertools layer"
        assert all(p["Type"] == "AWS::SSM::Parameter::Value<String>" for p in parameters.values())
        layer = {"Ref": next(iter(parameters))}
    handlers = {
        names.Handler(fn["Properties"]["Handler"])
        for fn in any_stage.resources("functions", "AWS::Lambda::Function").values()
    }
    assert handlers == {
        names.Handler.INGEST,
        names.Handler.WORKER,
        names.Handler.RELAY,
        names.Handler.REDRIVE,
        names.Handler.RESET,
        *((names.Handler.EVENT_LOG,) if config.event_audit else ()),
    }
    for kind in ("functions", "api"):
        for fn in any_stage.resources(kind, "AWS::Lambda::Function").values():
            props = fn["Properties"]
            assert props["Runtime"] == "python3.13"
            assert props["Layers"][0] == layer
            # No TracingConfig is Lambda's PassThrough: "Lambda will only trace the request from an
            # upstream service if it contains a tracing header with "sampled=1"" (AWS Lambda API
            # Reference, TracingConfig); nothing upstream of the stage's functions samples.
            assert props.get("TracingConfig") == ({"Mode": "Active"} if config.tracing_enabled else None)
            assert props["MemorySize"] == config.function_memory_mb
            assert props["Timeout"] >= 1
            assert props["Architectures"] == [config.architecture]
            variables = props["Environment"]["Variables"]
            assert variables[names.EnvVar.POWERTOOLS_SERVICE_NAME.value] == names.SERVICE_NAME
            # Where tracing is off (the local cloud, no X-Ray daemon) the functions never load the SDK.
            disabled = variables.get(names.EnvVar.POWERTOOLS_TRACE_DISABLED.value)
            assert disabled == (None if config.tracing_enabled else "true")
            assert "LogGroup" in props["LoggingConfig"]


def test_every_function_logs_json_at_application_info_and_the_stage_system_level(
    any_stage: SynthesizedStage,
) -> None:
    """AWS Lambda Developer Guide, "Log-level filtering": with the JSON log format Lambda filters
    application lines by level, and gives a line without a "level" key (an EMF metrics line) the
    level INFO, so ApplicationLogLevel above INFO would drop the metrics; SystemLogLevel WARN drops
    the START, END and REPORT lines (prod)."""
    config = any_stage.config
    application = "DEBUG" if config.log_level == "DEBUG" else "INFO"
    functions = [
        fn
        for kind in ("functions", "api")
        for fn in any_stage.resources(kind, "AWS::Lambda::Function").values()
    ]
    assert functions
    for fn in functions:
        logging_config = fn["Properties"]["LoggingConfig"]
        assert logging_config["LogFormat"] == "JSON"
        assert logging_config["ApplicationLogLevel"] == application
        assert logging_config["SystemLogLevel"] == config.lambda_system_log_level


def test_prod_drops_the_platform_lines_and_the_info_lines_but_not_the_metrics(
    prod: SynthesizedStage, dev: SynthesizedStage
) -> None:
    for fn in prod.resources("functions", "AWS::Lambda::Function").values():
        props = fn["Properties"]
        assert props["LoggingConfig"]["SystemLogLevel"] == "WARN"
        assert props["LoggingConfig"]["ApplicationLogLevel"] == "INFO"
        assert props["Environment"]["Variables"][names.EnvVar.POWERTOOLS_LOG_LEVEL.value] == "WARNING"
        assert "TracingConfig" not in props
    for fn in dev.resources("functions", "AWS::Lambda::Function").values():
        props = fn["Properties"]
        assert props["LoggingConfig"]["SystemLogLevel"] == "INFO"
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_layer_parameter_names_the_release_pinned_for_the_runtime() -> None:
    pinned = next(
        line.split("==")[1].strip()
        for line in (REPO_ROOT / "requirements-runtime.txt").read_text().splitlines()
        if line.startswith("aws-lambda-powertools==")
    )
    assert powertools_package_version() == pinned
    assert powertools_layer_parameter("arm64") == f"/aws/service/powertools/python/arm64/python3.13/{pinned}"


def test_layer_arn_format_is_the_public_powertools_v3_layer() -> None:
    assert (
        powertools_layer_arn(region="eu-west-1", architecture="arm64", version=36)
        == "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:36"
    )


def test_each_function_logs_to_its_own_log_group_with_retention(any_stage: SynthesizedStage) -> None:
    for fn in _functions(any_stage).values():
        props = any_stage.raw["functions"]["Resources"][any_stage.logical_id(fn.function)]["Properties"]
        assert props["LoggingConfig"]["LogGroup"] == {"Ref": any_stage.logical_id(fn.log_group)}
        group = any_stage.raw["functions"]["Resources"][any_stage.logical_id(fn.log_group)]["Properties"]
        assert group["LogGroupName"] == f"/aws/lambda/{fn.function_name}"
        assert group["RetentionInDays"] == any_stage.config.log_retention_days


def _code_asset(stage: SynthesizedStage, synthesis: Synthesis) -> Path:
    worker = stage.stage.compute.worker.function
    props = stage.raw["functions"]["Resources"][stage.logical_id(worker)]["Properties"]
    asset = Path(synthesis.outdir) / f"asset.{props['Code']['S3Key'].removesuffix('.zip')}"
    assert asset.is_dir()
    return asset


def _bundled_pins() -> dict[str, str]:
    """name -> version of every line of requirements-bundled.txt (each must be pinned with ==)."""
    pins = {}
    for line in BUNDLED_REQUIREMENTS.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, separator, version = requirement.partition("==")
            assert separator, f"{requirement}: bundled requirements must be pinned with =="
            assert version.strip(), requirement
            pins[name.strip()] = version.strip()
    return pins


def test_code_asset_holds_the_functions_package_and_nothing_else_of_the_repository(
    dev: SynthesizedStage, synthesis: Synthesis
) -> None:
    asset = _code_asset(dev, synthesis)
    assert (asset / "functions" / "common" / "names.py").is_file()
    assert not list(asset.rglob("__pycache__"))
    assert not list(asset.rglob("*.pyc"))

    def files(root: Path) -> set[str]:
        return {
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }

    # All of the package, nothing lost, nothing added.
    assert files(asset / "functions") == files(REPO_ROOT / "functions")
    # Every other top-level entry belongs to a bundled distribution (its dist-info lists it).
    recorded = {
        entry.split("/", 1)[0]
        for dist_info in asset.glob("*.dist-info")
        for entry in (dist_info / "RECORD").read_text().splitlines()
    }
    assert {p.name for p in asset.iterdir()} - {"functions"} <= recorded | {
        p.name for p in asset.glob("*.dist-info")
    }


def test_code_asset_carries_each_bundled_package_with_its_licence(
    dev: SynthesizedStage, synthesis: Synthesis
) -> None:
    """Third-party code the runtime lacks is bundled into the asset (AWS Lambda Developer Guide,
    "Working with .zip file archives for Python Lambda functions"), licence included."""
    asset = _code_asset(dev, synthesis)
    pins = _bundled_pins()
    assert "rfc8785" in pins
    for name, version in pins.items():
        (dist_info,) = asset.glob(f"{name.replace('-', '_')}-{version}.dist-info")
        licences = [p for p in dist_info.rglob("*") if p.is_file() and "licen" in p.name.lower()]
        assert licences, f"{dist_info.name} carries no licence file"
    # Importable as the runtime imports it: the asset root on sys.path, no site-packages (-S), so
    # the package cannot come from the developer's venv.
    probe = (
        "import rfc8785, functions.common.names; "
        "print(rfc8785.__file__); print(rfc8785.dumps({'b': 1, 'a': 1e16}).decode())"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(asset)!r}); {probe}"],
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, canonical = result.stdout.split()
    assert Path(module_file).is_relative_to(asset)
    assert canonical == '{"a":10000000000000000,"b":1}'


def test_code_asset_is_the_same_for_every_function_and_stage(synthesis: Synthesis) -> None:
    """One asset per content: every function of every stage points at the same S3 key."""
    keys = {
        fn["Properties"]["Code"]["S3Key"]
        for stage in synthesis.stages.values()
        for kind in ("functions", "api")
        for fn in stage.resources(kind, "AWS::Lambda::Function").values()
    }
    assert len(keys) == 1


def test_worker_event_source_reports_partial_batch_failures(any_stage: SynthesizedStage) -> None:
    config = any_stage.config
    any_stage.templates["functions"].has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": any_stage.raw["functions"]["Resources"][
                any_stage.logical_id(any_stage.stage.compute.worker.event_source)
            ]["Properties"]["EventSourceArn"],
            "FunctionName": {"Ref": any_stage.logical_id(any_stage.stage.compute.worker.function)},
            "BatchSize": config.batch_size,
            "MaximumBatchingWindowInSeconds": config.max_batching_window_seconds,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": config.worker_max_concurrency},
        },
    )
    mapping = any_stage.raw["functions"]["Resources"][
        any_stage.logical_id(any_stage.stage.compute.worker.event_source)
    ]
    assert any_stage.ref(mapping["Properties"]["EventSourceArn"]) == any_stage.arn(
        any_stage.stage.state.queue
    )


def test_worker_environment_carries_the_guardrails(any_stage: SynthesizedStage) -> None:
    worker = any_stage.raw["functions"]["Resources"][
        any_stage.logical_id(any_stage.stage.compute.worker.function)
    ]
    env = worker["Properties"]["Environment"]["Variables"]
    config = any_stage.config
    assert env[names.EnvVar.FAILURE_MODE_PARAMETER.value] == names.FAILURE_MODE_PARAMETER
    assert env[names.EnvVar.FAILURE_INJECTION_ENABLED.value] == str(config.failure_injection_enabled).lower()
    assert env[names.EnvVar.FAILURE_MODE_MAX_TTL_SECONDS.value] == str(config.failure_mode_max_ttl_seconds)
    assert any_stage.ref(env[names.EnvVar.TABLE_NAME.value]) == any_stage.logical_id(
        any_stage.stage.state.state_table
    )


def test_prod_functions_ignore_failure_modes(prod: SynthesizedStage) -> None:
    for fn in prod.resources("functions", "AWS::Lambda::Function").values():
        env = fn["Properties"]["Environment"]["Variables"]
        if names.EnvVar.FAILURE_INJECTION_ENABLED.value in env:
            assert env[names.EnvVar.FAILURE_INJECTION_ENABLED.value] == "false"


def test_redrive_environment_and_async_job_configuration(dev: SynthesizedStage) -> None:
    redrive = dev.raw["functions"]["Resources"][dev.logical_id(dev.stage.compute.redrive.function)][
        "Properties"
    ]
    env = redrive["Environment"]["Variables"]
    assert env[names.EnvVar.MAX_REDRIVES_PER_MESSAGE.value] == str(dev.config.max_redrives_per_message)
    assert env[names.EnvVar.REDRIVE_MAX_MESSAGES_PER_SECOND.value] == str(
        dev.config.redrive_max_messages_per_second
    )
    assert dev.ref(env[names.EnvVar.QUARANTINE_QUEUE_URL.value]) == dev.logical_id(
        dev.stage.state.quarantine_queue
    )
    assert redrive["FunctionName"] == f"{dev.config.prefix}-redrive"
    invoke_config = next(iter(dev.resources("functions", "AWS::Lambda::EventInvokeConfig").values()))[
        "Properties"
    ]
    assert invoke_config["MaximumRetryAttempts"] == 2  # a retry resumes the job under its lease
    destination = invoke_config["DestinationConfig"]["OnFailure"]["Destination"]
    assert dev.ref(destination) == dev.arn(dev.stage.compute.events.delivery_dlq)
