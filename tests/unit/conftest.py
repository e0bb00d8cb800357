"""Unit-test fixtures: moto in-process AWS, no network, and the stage's resources in miniature."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.common.names import (
    EVENT_SOURCE,
    FAILURE_MODE_PARAMETER,
    REDRIVE_JOBS_PARTITION_KEY,
    STATE_TABLE_PARTITION_KEY,
    EnvVar,
    Output,
)
from stage_client.target import Target

REGION = "us-east-1"
NEW_AND_OLD_IMAGES = "NEW_AND_OLD_IMAGES"

# Before any test module imports boto3 clients: fake credentials, one region, tracing off, and no
# endpoint override inherited from a lab shell (it would send moto's calls to a real server).
for _name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")] + ["AWS_PROFILE"]:
    os.environ.pop(_name, None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        # botocore sends a DynamoDB Streams call whose StreamArn names an account to the account's
        # own endpoint (<account>.streams-ddb.<region>.amazonaws.com), which moto does not route.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }
)


def _is_loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    """Unit tests never leave the machine: any non-loopback connect fails loudly."""
    original_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if self.family != socket.AF_UNIX and not _is_loopback(address):
            raise RuntimeError(f"unit tests must not use the network (connect to {address!r})")
        return original_connect(self, address)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
    yield
    socket.socket.connect = original_connect  # type: ignore[method-assign]


@dataclass
class LambdaContextStub:
    """The attributes of the Lambda context object that Powertools and the handlers read."""

    remaining_ms: int = 30_000
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> LambdaContextStub:
    return LambdaContextStub()


@dataclass
class Stage:
    """Clients and resource names of a miniature stage inside moto."""

    sqs: Any
    dynamodb: Any
    ssm: Any
    events: Any
    queue_url: str
    dlq_url: str
    quarantine_url: str
    event_capture_url: str
    table_name: str
    jobs_table_name: str
    bus_name: str

    def receive_all(self, queue_url: str, *, attributes: bool = True) -> list[dict[str, Any]]:
        """Drain a queue (deleting nothing; long invisibility so each message is seen once)."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=600,
                MessageAttributeNames=["All"] if attributes else [],
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)

    def depth(self, queue_url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def captured_events(self) -> list[dict[str, Any]]:
        return [json.loads(message["Body"]) for message in self.receive_all(self.event_capture_url)]

    def state(self, key: str) -> dict[str, Any] | None:
        from functions.common.state_table import plain_item

        item = self.dynamodb.get_item(
            TableName=self.table_name, Key={STATE_TABLE_PARTITION_KEY: {"S": key}}
        ).get("Item")
        return plain_item(item) if item else None

    def set_failure_mode(self, value: str) -> None:
        self.ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value=value, Type="String", Overwrite=True)


def _table(dynamodb: Any, name: str, key: str, *, stream: bool = False) -> None:
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        **(
            {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
            if stream
            else {}
        ),
    )


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        ssm = boto3.client("ssm", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName="ingest-main",
            Attributes={
                "VisibilityTimeout": "180",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
            },
        )["QueueUrl"]
        quarantine_url = sqs.create_queue(QueueName="ingest-quarantine")["QueueUrl"]
        capture_url = sqs.create_queue(QueueName="event-capture")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # The state table's stream is the relay's input, as in the stage (app/constructs/tables.py).
        _table(dynamodb, "ingestion_state", STATE_TABLE_PARTITION_KEY, stream=True)
        _table(dynamodb, "redrive_jobs", REDRIVE_JOBS_PARTITION_KEY)
        ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value="none", Type="String")
        bus_name = "ingestion-bus"
        events.create_event_bus(Name=bus_name)
        events.put_rule(
            Name="all", EventBusName=bus_name, EventPattern=json.dumps({"source": [EVENT_SOURCE]})
        )
        events.put_targets(Rule="all", EventBusName=bus_name, Targets=[{"Id": "capture", "Arn": capture_arn}])
        env = {
            EnvVar.QUEUE_URL: queue_url,
            EnvVar.DLQ_URL: dlq_url,
            EnvVar.QUARANTINE_QUEUE_URL: quarantine_url,
            EnvVar.TABLE_NAME: "ingestion_state",
            EnvVar.REDRIVE_JOBS_TABLE_NAME: "redrive_jobs",
            EnvVar.EVENT_BUS_NAME: bus_name,
            EnvVar.FAILURE_MODE_PARAMETER: FAILURE_MODE_PARAMETER,
            EnvVar.FAILURE_MODE_CACHE_SECONDS: "0",
            EnvVar.FAILURE_INJECTION_ENABLED: "true",
            EnvVar.TTL_DAYS: "3",
        }
        for name, value in env.items():
            monkeypatch.setenv(name.value, value)
        yield Stage(
            sqs=sqs,
            dynamodb=dynamodb,
            ssm=ssm,
            events=events,
            queue_url=queue_url,
            dlq_url=dlq_url,
            quarantine_url=quarantine_url,
            event_capture_url=capture_url,
            table_name="ingestion_state",
            jobs_table_name="redrive_jobs",
            bus_name=bus_name,
        )


@pytest.fixture
def lab_target(stage: Any) -> Target:
    """A Target over the moto miniature stage of tests/unit/conftest.py (in-process, no endpoint)."""
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="alarms")["TopicArn"]
    return Target(
        name="moto",
        outputs={
            Output.QUEUE_URL.value: stage.queue_url,
            Output.QUEUE_NAME.value: "ingest-main",
            Output.DLQ_URL.value: stage.dlq_url,
            Output.DLQ_NAME.value: "ingest-dlq",
            Output.QUARANTINE_QUEUE_URL.value: stage.quarantine_url,
            Output.EVENT_AUDIT_QUEUE_URL.value: stage.event_capture_url,
            Output.TABLE_NAME.value: stage.table_name,
            Output.ALARM_TOPIC_ARN.value: topic,
        },
        api_url="http://127.0.0.1:9",
        region=REGION,
    )
