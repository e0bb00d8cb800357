"""Starts the pinned ministack engine with the corrections the lab needs: no dimension-blind alarm
evaluation, Lambda metrics for every invocation, loopback counted as TLS, SQS batch IAM actions, old
metric points dropped once a minute instead of on every CloudWatch request, a shorter GIL switch
interval, and the patches of engine_patches/ (service-principal deliveries checked against resource and key
policies, export locks, SigV4 on AWS_IAM routes, the at-least-once mode, AWS::CodePipeline::Pipeline
for CloudFormation, iam:ResourceTag, Ref of a secret, a function's log lines collected up to the end of
its invocation, execute-api requests run in the API's own account, a rule's Lambda target invoked
through a queue with a bounded number of environments, a queue-age summary for the agent, DynamoDB
stream mappings that wait for their batching window and invoke off the poll thread).

Run by the engine virtualenv's interpreter (see lab.localcloud.engine); it imports only ministack
and engine_patches/ (loaded by path as the package `lab_engine_patches`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from types import ModuleType
from typing import Any

# Run as a file, this folder would sit first on sys.path and its modules could shadow the
# engine's imports (and the deployed functions' ones in the worker processes it forks).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

from ministack import app  # noqa: E402
from ministack.core import iam_actions  # noqa: E402
from ministack.services import cloudwatch, lambda_svc  # noqa: E402

PATCHES_DIR = os.path.join(_HERE, "engine_patches")
PATCHES_PACKAGE = "lab_engine_patches"
# Installed in this order: the at-least-once duplicates go through the delivery checks too.
PATCH_MODULES = (
    "deliveries",
    "export_locks",
    "execute_api_iam",
    "at_least_once",
    "codepipeline",
    "iam_resource_tags",
    "secret_ref",
    "invocation_logs",
    "async_invocations",
    "queue_summary",
    "execute_api_owner",
    "stream_batching",
)

# IAM has no action of its own for these SQS batch APIs: AWS authorizes each with the action of
# its single-message form, so a role granted sqs:SendMessage may call SendMessageBatch.
SQS_BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


def _engine_never_evaluates_alarms(alarm: dict[str, Any]) -> None:
    """Replaces ministack's own evaluation, which matches data points on namespace and metric name
    only (data of one queue would flip another queue's alarm); the lab's agent evaluates every
    alarm by its full definition and sets the state, which still fires the alarm's SNS actions."""


def _lambda_metrics_for_every_invocation(original: Any) -> Any:
    """ministack records AWS/Lambda Invocations/Errors/Duration only for the Invoke API; the
    dispatcher below it runs every accounted invocation (API Gateway, SQS mapping, EventBridge,
    SNS, async Invoke, stream mappings), so measuring there gives the metrics AWS would publish for
    all of them. ministack records no IteratorAge at all: it is added here for stream batches, so
    that an alarm on it (the relay's relay-iterator-age) is evaluated locally as on AWS."""

    def dispatch(func: dict[str, Any], config: dict[str, Any], event: Any, request_id: str, started: float):
        result = original(func, config, event, request_id, started)
        dims = {"FunctionName": config.get("FunctionName", "unknown")}
        failed = bool(result.get("error")) if isinstance(result, dict) else False
        cloudwatch.record_metric("AWS/Lambda", "Invocations", 1, "Count", dims)
        cloudwatch.record_metric("AWS/Lambda", "Errors", 1 if failed else 0, "Count", dims)
        cloudwatch.record_metric(
            "AWS/Lambda", "Duration", (time.time() - started) * 1000.0, "Milliseconds", dims
        )
        age_ms = stream_iterator_age_ms(event, started)
        if age_ms is not None:
            cloudwatch.record_metric("AWS/Lambda", "IteratorAge", age_ms, "Milliseconds", dims)
        return result

    return dispatch


def stream_iterator_age_ms(event: Any, invoked_at: float) -> float | None:
    """AWS/Lambda IteratorAge of one invocation: for an event source mapping that reads a stream,
    the age of the last record of the batch when the mapping sent it to the function, in
    milliseconds (AWS Lambda Developer Guide, "Types of metrics for Lambda functions", IteratorAge);
    None for any other event (AWS emits it for stream sources only)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records or not isinstance(records[-1], dict):
        return None
    last = records[-1]
    if last.get("eventSource") == "aws:dynamodb":
        created = (last.get("dynamodb") or {}).get("ApproximateCreationDateTime")
    elif last.get("eventSource") == "aws:kinesis":
        created = (last.get("kinesis") or {}).get("approximateArrivalTimestamp")
    else:
        return None
    if isinstance(created, bool) or not isinstance(created, int | float):
        return None
    return max(0.0, (invoked_at - float(created)) * 1000.0)


def _throttles_only(original: Any) -> Any:
    """Keep the engine's throttle count (throttled calls never reach the dispatcher); drop its
    Invoke-only invocation counts, which would double those recorded by the dispatcher."""

    def emit(function_name: str, duration_ms: float, error: bool, throttle: bool) -> None:
        if throttle:
            original(function_name, duration_ms=duration_ms, error=error, throttle=throttle)

    return emit


def _loopback_counts_as_tls(original: Any) -> Any:
    """On AWS every SDK call uses HTTPS, so TLS-only policies (aws:SecureTransport=false -> Deny, as
    in the CDK bootstrap bucket and the stage's queues) never deny a real client; the engine speaks
    HTTP on 127.0.0.1 only, so treat that loopback link as the TLS it stands in for. Without this,
    AUTH=true denies the CDK CLI's asset upload and every function's SQS call."""

    def pin(source_ip: str, secure_transport: bool) -> None:
        original(source_ip, True)

    return pin


def _sqs_batches_authorized_as_aws_does(original: Any) -> Any:
    """ministack evaluates sqs:SendMessageBatch (and the other batch APIs) as actions of their own,
    which no policy grants on AWS: a correct role would be denied locally."""

    def extract(*args: Any, **kwargs: Any) -> str | None:
        action = original(*args, **kwargs)
        return SQS_BATCH_ACTIONS.get(action, action) if action else action

    return extract


def load_patches() -> list[ModuleType]:
    """engine_patches/ as a package of its own name (not `lab...`: the engine has no lab package)."""
    spec = importlib.util.spec_from_file_location(
        PATCHES_PACKAGE, os.path.join(PATCHES_DIR, "__init__.py"), submodule_search_locations=[PATCHES_DIR]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"engine_main: cannot load {PATCHES_DIR}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[PATCHES_PACKAGE] = package
    spec.loader.exec_module(package)
    return [importlib.import_module(f"{PATCHES_PACKAGE}.{name}") for name in PATCH_MODULES]


# ministack drops data points older than two weeks on every CloudWatch request, walking every point
# of every metric (the engine records AWS/Lambda metrics for each invocation): on the engine's event
# loop, in front of every other request. Once a minute keeps the same retention.
METRIC_EVICTION_INTERVAL_SECONDS = 60.0


def _evicted_at_most_every(original: Any, seconds: float) -> Any:
    last = [0.0]

    def evict() -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            original()

    return evict


# The engine answers every HTTP request on one asyncio thread, which gives the GIL up at each socket
# read and write; its Lambda plumbing (a thread per invocation, one per worker process reading its
# output, the event source pollers) takes it meanwhile. With CPython's default 5 ms switch interval a
# request waits up to that long to get the GIL back after each of those calls; a shorter interval
# hands it back sooner (set by lab.localcloud.engine: engine_patches/limits.py SWITCH_INTERVAL_ENV).
def switch_interval_seconds(raw: str, env_name: str) -> float:
    """The GIL switch interval the engine runs with (CPython's 5 ms when unset)."""
    try:
        milliseconds = float(raw) if raw else 5.0
    except ValueError:
        raise SystemExit(f"engine_main: {env_name} must be a number of ms, got {raw!r}") from None
    if not 0.05 <= milliseconds <= 100:
        raise SystemExit(f"engine_main: {env_name} must be 0.05..100 ms, got {milliseconds}")
    return milliseconds / 1000


def main() -> None:
    # Fail loudly if an engine upgrade moved what is replaced here (the conformance tests
    # tests/local/engine/test_cloudwatch.py name the behaviour that would then be lost).
    for module, name in (
        (cloudwatch, "_evaluate_alarm"),
        (cloudwatch, "record_metric"),
        (cloudwatch, "_evict_old_metrics"),
        (lambda_svc, "_execute_function_dispatch"),
        (lambda_svc, "_emit_lambda_metrics"),
        (app, "pin_request_origin"),
        (iam_actions, "extract_iam_action"),
    ):
        if not callable(getattr(module, name, None)):
            raise SystemExit(f"engine_main: ministack has no {module.__name__}.{name}: update the lab")
    cloudwatch._evaluate_alarm = _engine_never_evaluates_alarms
    cloudwatch._evict_old_metrics = _evicted_at_most_every(
        cloudwatch._evict_old_metrics, METRIC_EVICTION_INTERVAL_SECONDS
    )
    lambda_svc._execute_function_dispatch = _lambda_metrics_for_every_invocation(
        lambda_svc._execute_function_dispatch
    )
    lambda_svc._emit_lambda_metrics = _throttles_only(lambda_svc._emit_lambda_metrics)
    app.pin_request_origin = _loopback_counts_as_tls(app.pin_request_origin)
    iam_actions.extract_iam_action = _sqs_batches_authorized_as_aws_does(iam_actions.extract_iam_action)
    patches = load_patches()
    limits = importlib.import_module(f"{PATCHES_PACKAGE}.limits")
    env_name = limits.SWITCH_INTERVAL_ENV
    sys.setswitchinterval(switch_interval_seconds(os.environ.get(env_name, ""), env_name))
    for patch in patches:
        patch.install()
    app.main()


if __name__ == "__main__":
    main()
