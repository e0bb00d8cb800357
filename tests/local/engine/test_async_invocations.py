"""Engine conformance: EventBridge invokes a Lambda target asynchronously, through a queue drained by a
bounded number of execution environments, and a failed event is retried (AWS Lambda Developer Guide,
"Invoking a Lambda function asynchronously": Lambda queues the event and a separate process sends it
to the function; a function error is retried twice by default). lab.localcloud.engine_patches.
async_invocations."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lab.localcloud.engine import EngineClients
from lab.localcloud.engine_patches.limits import DEFAULT_ASYNC_CONCURRENCY

# Sends each event's number, its process id and its attempt to OUT. With FAIL_FIRST, the first
# attempt of each event fails (a marker file per event id, in the test's MARKERS folder, remembers
# it across the function's environments).
RECORDING_SOURCE = """
import json, os, boto3
sqs = boto3.client("sqs")

def lambda_handler(event, context):
    marker = os.path.join(os.environ["MARKERS"], event["id"])
    first = not os.path.exists(marker)
    if first:
        open(marker, "w").close()
    if os.environ.get("FAIL_FIRST") and first:
        raise RuntimeError("first attempt fails")
    sqs.send_message(QueueUrl=os.environ["OUT"], MessageBody=json.dumps(
        {"n": event["detail"]["n"], "pid": os.getpid(), "first": first}))
"""


def _bus_targeting(events: Any, lam: Any, bus: str, function: str) -> str:
    """A bus whose one rule sends every lab.async event to the function (allowed to invoke it)."""
    function_arn = lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    events.create_event_bus(Name=bus)
    rule_arn = events.put_rule(
        Name="all", EventBusName=bus, EventPattern=json.dumps({"source": ["lab.async"]})
    )["RuleArn"]
    lam.add_permission(
        FunctionName=function, StatementId="events", Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com", SourceArn=rule_arn,
    )  # fmt: skip
    events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "fn", "Arn": function_arn}])
    return bus


def _rule_to_function(
    local_engine: Any, make_function: Any, name: Any, arn_of_queue: Any, markers: Path, **env: str
) -> tuple[Any, str, Any, str]:
    sqs, lam, events = (local_engine.client(s) for s in ("sqs", "lambda", "events"))
    queue_name = name("out")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    function = make_function(
        RECORDING_SOURCE,
        environment={"OUT": queue_url, "MARKERS": str(markers), **env},
        policy={
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn_of_queue(queue_name)}
            ],
        },
    )
    return events, _bus_targeting(events, lam, name("bus"), function), sqs, queue_url


def _probe(bus: str, number: int) -> dict[str, str]:
    detail = json.dumps({"n": number})
    return {"Source": "lab.async", "DetailType": "Probe", "Detail": detail, "EventBusName": bus}


def _publish(events: Any, bus: str, numbers: range) -> None:
    for start in range(numbers.start, numbers.stop, 10):
        entries = [_probe(bus, n) for n in range(start, min(start + 10, numbers.stop))]
        assert events.put_events(Entries=entries)["FailedEntryCount"] == 0


def _received(sqs: Any, queue_url: str, expected: int, timeout: float) -> list[dict[str, Any]]:
    """Every delivery (the at-least-once mode may add copies of an event), until `expected`
    distinct events came or the time is up."""
    deliveries: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len({d["n"] for d in deliveries}) < expected and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            deliveries.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return deliveries


def test_a_burst_of_events_is_served_by_a_bounded_number_of_environments(
    local_engine, make_function, name, arn_of_queue, tmp_path
):
    """40 events at once: each reaches the function, and at most the local limit of environments
    serve them (ministack alone started one worker process per concurrent delivery: a cold start each)."""
    events, bus, sqs, queue_url = _rule_to_function(local_engine, make_function, name, arn_of_queue, tmp_path)

    _publish(events, bus, range(40))

    deliveries = _received(sqs, queue_url, 40, timeout=60)
    assert {d["n"] for d in deliveries} == set(range(40))
    assert len({d["pid"] for d in deliveries}) <= DEFAULT_ASYNC_CONCURRENCY


def test_a_failed_event_is_retried(local_engine, make_function, name, arn_of_queue, tmp_path):
    """Every event's first attempt raises: each is delivered on its retry (ministack alone dropped
    an event whose invocation failed)."""
    events, bus, sqs, queue_url = _rule_to_function(
        local_engine, make_function, name, arn_of_queue, tmp_path, FAIL_FIRST="1"
    )

    _publish(events, bus, range(5))

    deliveries = _received(sqs, queue_url, 5, timeout=60)
    assert {d["n"] for d in deliveries} == set(range(5))
    assert not any(d["first"] for d in deliveries)


FAILING_SOURCE = """
def lambda_handler(event, context):
    raise RuntimeError("always fails")
"""


def test_an_event_that_keeps_failing_goes_to_the_function_s_dead_letter_queue_in_its_own_account(
    local_engine, make_function, name
):
    """After its retries the event lands in the function's DLQ, in the function's account (not the
    engine's default one: the rehearsal's dev and prod accounts run their event log there)."""
    account = "111111111111"
    clients = EngineClients(local_engine.info, account=account)
    sqs, lam, events = clients("sqs"), clients("lambda"), clients("events")
    dlq_name = name("async-dlq")
    dlq_url = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    dlq_arn = attributes["Attributes"]["QueueArn"]
    function = make_function(FAILING_SOURCE, account=account)
    lam.update_function_configuration(FunctionName=function, DeadLetterConfig={"TargetArn": dlq_arn})
    lam.put_function_event_invoke_config(FunctionName=function, MaximumRetryAttempts=1)
    bus = _bus_targeting(events, lam, name("bus"), function)

    _publish(events, bus, range(1))

    deadline = time.monotonic() + 30
    dead: list[dict[str, Any]] = []
    while not dead and time.monotonic() < deadline:
        dead = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages", [])
    assert dead, "the failed event never reached the function's dead-letter queue"
