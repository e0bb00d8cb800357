"""Engine conformance: a delivery made by a service principal happens only when the target's
resource policy (and, for a KMS-encrypted target, its key policy) allows it, as on AWS; a refused
delivery is logged with its reason (lab/localcloud/engine_patches/deliveries.py).

One test per path, on resources the test creates: the statement present -> delivered; the
statement removed -> not delivered, and the engine log says why.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.localcloud.engine import ACCOUNT_ID, REGION

TLS_ONLY_SID = "AllowPublishThroughSSLOnly"


def tls_only(action: str, resource: str) -> dict[str, Any]:
    """The statement CDK's enforceSSL writes: the whole policy of a topic or queue that has no other."""
    return {
        "Sid": TLS_ONLY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resource,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def service_may(service: str, action: str, resource: str, source_arn: str) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": action,
        "Resource": resource,
        "Condition": {
            "ArnLike": {"aws:SourceArn": source_arn},
            "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        },
    }


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class EngineLog:
    """The session engine's log from a point on: where refusals are explained."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = path.stat().st_size if path.exists() else 0

    def wait_for(self, *fragments: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self._path.read_text(errors="replace")[self._offset :]
            for line in text.splitlines():
                if all(fragment in line for fragment in fragments):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no engine log line with {fragments} (lines since: {text[-2000:]!r})")
            time.sleep(0.2)


def received(sqs: Any, queue_url: str, *, wait_s: float) -> list[dict[str, Any]]:
    """Every message that arrives within wait_s (deleted as read)."""
    deadline = time.monotonic() + wait_s
    messages: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages += batch
        if messages:
            break
    return messages


def inbox(
    local_engine: Any, name: Callable[[str], str], arn_of_queue: Callable[[str], str]
) -> tuple[str, str]:
    """A queue any SNS topic of the account may deliver to: (url, arn)."""
    sqs = local_engine.client("sqs")
    queue_name = name("inbox")
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = arn_of_queue(queue_name)
    allow_sns = {
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": arn,
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy(allow_sns)})
    return url, arn


def key_allowing(local_engine: Any, service: str | None) -> str:
    """A customer managed key: the account administers it; `service` may use it (None: nobody else)."""
    statements = [
        {
            "Sid": "Admin",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if service:
        statements.append(
            {
                "Sid": "ServiceUse",
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
            }
        )
    return str(local_engine.client("kms").create_key(Policy=policy(*statements))["KeyMetadata"]["Arn"])


# --- CloudWatch alarm -> SNS -------------------------------------------------------------------


def alarm_notifying(local_engine: Any, name: Callable[[str], str], topic_arn: str) -> tuple[str, str]:
    cloudwatch = local_engine.client("cloudwatch")
    alarm = name("alarm")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="LabConformance",
        MetricName="Probe",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[topic_arn],
    )
    return alarm, f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{alarm}"


def flip_to_alarm(local_engine: Any, alarm: str) -> None:
    cloudwatch = local_engine.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="conformance: reset")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="conformance: probe")


def test_alarm_notifies_a_topic_only_when_its_policy_allows_cloudwatch(local_engine, name, arn_of_queue):
    """CloudWatch user guide, "Using Amazon SNS topics" (Notify_Users_Alarm_Changes.html): the topic
    policy must let cloudwatch.amazonaws.com publish; issue 12's alarm topic had only the TLS Deny."""
    sns, sqs = local_engine.client("sns"), local_engine.client("sqs")
    topic_arn = sns.create_topic(Name=name("alarms"))["TopicArn"]
    inbox_url, inbox_arn = inbox(local_engine, name, arn_of_queue)
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"}
    )
    alarm, alarm_arn = alarm_notifying(local_engine, name, topic_arn)
    allowed = policy(
        tls_only("sns:Publish", topic_arn),
        service_may("cloudwatch.amazonaws.com", "sns:Publish", topic_arn, alarm_arn),
    )
    sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy", AttributeValue=allowed)

    flip_to_alarm(local_engine, alarm)
    delivered = received(sqs, inbox_url, wait_s=10)
    assert delivered, "the alarm notification did not reach the topic's subscriber"
    assert json.loads(delivered[0]["Body"])["AlarmName"] == alarm

    log = EngineLog(local_engine.state.engine_log)
    sns.set_topic_attributes(
        TopicArn=topic_arn, AttributeName="Policy", AttributeValue=policy(tls_only("sns:Publish", topic_arn))
    )
    flip_to_alarm(local_engine, alarm)
    line = log.wait_for("delivery refused", "cloudwatch.amazonaws.com sns:Publish", topic_arn)
    assert "no statement of the topic policy allows cloudwatch.amazonaws.com" in line
    assert received(sqs, inbox_url, wait_s=3) == []


def test_alarm_notifies_an_encrypted_topic_only_when_the_key_policy_allows_cloudwatch(
    local_engine, name, arn_of_queue
):
    """SNS developer guide, sns-key-management.html#compatibility-with-aws-services: CloudWatch needs
    kms:GenerateDataKey* and kms:Decrypt on the key of an encrypted topic."""
    sns, sqs = local_engine.client("sns"), local_engine.client("sqs")
    inbox_url, inbox_arn = inbox(local_engine, name, arn_of_queue)
    outcomes = {}
    for service in ("cloudwatch.amazonaws.com", None):
        key_arn = key_allowing(local_engine, service)
        topic_arn = sns.create_topic(Name=name("alarms-cmk"), Attributes={"KmsMasterKeyId": key_arn})[
            "TopicArn"
        ]
        sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"}
        )
        alarm, alarm_arn = alarm_notifying(local_engine, name, topic_arn)
        sns.set_topic_attributes(
            TopicArn=topic_arn,
            AttributeName="Policy",
            AttributeValue=policy(
                service_may("cloudwatch.amazonaws.com", "sns:Publish", topic_arn, alarm_arn)
            ),
        )
        log = EngineLog(local_engine.state.engine_log)
        flip_to_alarm(local_engine, alarm)
        if service is None:
            line = log.wait_for("delivery refused", topic_arn)
            assert f"key policy of {key_arn}" in line
        outcomes[service] = received(sqs, inbox_url, wait_s=5 if service else 3)
    assert outcomes["cloudwatch.amazonaws.com"], (
        "the key policy allows CloudWatch: the notification must arrive"
    )
    assert outcomes[None] == []


# --- EventBridge -> SNS, SQS, Lambda -------------------------------------------------------------


def bus_with_rule(local_engine: Any, name: Callable[[str], str]) -> tuple[str, str]:
    events = local_engine.client("events")
    bus = name("bus")
    events.create_event_bus(Name=bus)
    rule_arn = events.put_rule(
        Name="route", EventBusName=bus, EventPattern=json.dumps({"source": ["lab.conformance"]})
    )["RuleArn"]
    return bus, rule_arn


def put_event(local_engine: Any, bus: str, n: int) -> None:
    entry = {
        "Source": "lab.conformance",
        "DetailType": "Probe",
        "Detail": json.dumps({"n": n}),
        "EventBusName": bus,
    }
    assert local_engine.client("events").put_events(Entries=[entry])["FailedEntryCount"] == 0


def test_rule_publishes_to_a_topic_only_when_its_policy_allows_eventbridge(local_engine, name, arn_of_queue):
    """EventBridge user guide, "Using resource-based policies" (eb-use-resource-based.html), Amazon
    SNS permissions: the topic policy names events.amazonaws.com, with no condition (EventBridge
    sends none to SNS, so a statement conditioned on aws:SourceArn fails closed)."""
    sns, sqs, events = (local_engine.client(s) for s in ("sns", "sqs", "events"))
    bus, rule_arn = bus_with_rule(local_engine, name)
    topic_arn = sns.create_topic(Name=name("events"))["TopicArn"]
    inbox_url, inbox_arn = inbox(local_engine, name, arn_of_queue)
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"}
    )
    events.put_targets(Rule="route", EventBusName=bus, Targets=[{"Id": "topic", "Arn": topic_arn}])
    unconditioned = {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": topic_arn,
    }
    sns.set_topic_attributes(
        TopicArn=topic_arn,
        AttributeName="Policy",
        AttributeValue=policy(tls_only("sns:Publish", topic_arn), unconditioned),
    )

    put_event(local_engine, bus, 1)
    assert received(sqs, inbox_url, wait_s=10), "the rule did not publish to the topic"

    for remaining in (
        [service_may("events.amazonaws.com", "sns:Publish", topic_arn, rule_arn)],  # conditioned
        [],  # statement removed
    ):
        sns.set_topic_attributes(
            TopicArn=topic_arn,
            AttributeName="Policy",
            AttributeValue=policy(tls_only("sns:Publish", topic_arn), *remaining),
        )
        log = EngineLog(local_engine.state.engine_log)
        put_event(local_engine, bus, 2)
        line = log.wait_for("delivery refused", "events.amazonaws.com sns:Publish", topic_arn)
        assert f"(source {rule_arn})" in line
        assert received(sqs, inbox_url, wait_s=3) == []


def test_rule_sends_to_a_queue_only_when_its_policy_allows_eventbridge(local_engine, name, arn_of_queue):
    """EventBridge user guide, "Amazon SQS permissions" (eb-use-resource-based.html#eb-sqs-permissions)."""
    sqs, events = local_engine.client("sqs"), local_engine.client("events")
    bus, rule_arn = bus_with_rule(local_engine, name)
    queue_name = name("target")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = arn_of_queue(queue_name)
    events.put_targets(Rule="route", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    allow = service_may("events.amazonaws.com", "sqs:SendMessage", queue_arn, rule_arn)
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": policy(tls_only("sqs:*", queue_arn), allow)}
    )

    put_event(local_engine, bus, 1)
    assert received(sqs, queue_url, wait_s=10), "the rule did not send to the queue"

    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy(tls_only("sqs:*", queue_arn))})
    log = EngineLog(local_engine.state.engine_log)
    put_event(local_engine, bus, 2)
    log.wait_for("delivery refused", "events.amazonaws.com sqs:SendMessage", queue_arn)
    assert received(sqs, queue_url, wait_s=3) == []


RELAY_SOURCE = """
import json, os, boto3

def lambda_handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=os.environ["OUT"], MessageBody=json.dumps(event))
    return {"statusCode": 200, "body": "relayed"}
"""


def relay_function(
    local_engine: Any, make_function: Any, name: Callable[[str], str], arn_of_queue: Callable[[str], str]
) -> tuple[str, str, str]:
    """A function that forwards what it gets to a queue: (function name, its ARN, the queue URL)."""
    sqs = local_engine.client("sqs")
    queue_name = name("seen")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    function = make_function(
        RELAY_SOURCE,
        environment={"OUT": queue_url},
        policy={
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn_of_queue(queue_name)}
            ],
        },
    )
    arn = local_engine.client("lambda").get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    return function, arn, queue_url


def test_rule_invokes_a_function_only_when_its_permission_allows_eventbridge(
    local_engine, make_function, name, arn_of_queue
):
    """EventBridge user guide, "AWS Lambda permissions" (eb-use-resource-based.html#eb-lambda-permissions)."""
    lam, sqs, events = (local_engine.client(s) for s in ("lambda", "sqs", "events"))
    bus, rule_arn = bus_with_rule(local_engine, name)
    function, function_arn, seen_url = relay_function(local_engine, make_function, name, arn_of_queue)
    lam.add_permission(
        FunctionName=function, StatementId="events", Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com", SourceArn=rule_arn,
    )  # fmt: skip
    events.put_targets(Rule="route", EventBusName=bus, Targets=[{"Id": "fn", "Arn": function_arn}])

    put_event(local_engine, bus, 1)
    assert received(sqs, seen_url, wait_s=15), "the rule did not invoke the function"

    lam.remove_permission(FunctionName=function, StatementId="events")
    log = EngineLog(local_engine.state.engine_log)
    put_event(local_engine, bus, 2)
    line = log.wait_for("delivery refused", "events.amazonaws.com lambda:InvokeFunction", function)
    assert "function policy" in line
    assert received(sqs, seen_url, wait_s=4) == []


# --- SNS -> SQS ------------------------------------------------------------------------------------


def test_topic_delivers_to_a_queue_only_when_its_policy_allows_sns(local_engine, name, arn_of_queue):
    """SNS developer guide, "Subscribing an Amazon SQS queue to an Amazon SNS topic"
    (subscribe-sqs-queue-to-sns-topic.html). The engine checks the queue policy itself."""
    sns, sqs = local_engine.client("sns"), local_engine.client("sqs")
    topic_arn = sns.create_topic(Name=name("fanout"))["TopicArn"]
    queue_name = name("subscriber")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = arn_of_queue(queue_name)
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    allow = service_may("sns.amazonaws.com", "sqs:SendMessage", queue_arn, topic_arn)
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": policy(tls_only("sqs:*", queue_arn), allow)}
    )

    sns.publish(TopicArn=topic_arn, Message="one")
    assert received(sqs, queue_url, wait_s=10), "the topic did not deliver to the queue"

    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy(tls_only("sqs:*", queue_arn))})
    log = EngineLog(local_engine.state.engine_log)
    sns.publish(TopicArn=topic_arn, Message="two")
    log.wait_for("queue policy denies delivery", topic_arn, queue_name)
    assert received(sqs, queue_url, wait_s=3) == []


def test_topic_delivers_to_an_encrypted_queue_only_when_the_key_policy_allows_sns(
    local_engine, name, arn_of_queue
):
    """SQS developer guide, sqs-key-management.html: SNS needs kms:GenerateDataKey and kms:Decrypt
    on the key of an encrypted subscriber queue (an AWS managed key can never allow it)."""
    sns, sqs = local_engine.client("sns"), local_engine.client("sqs")
    topic_arn = sns.create_topic(Name=name("fanout-cmk"))["TopicArn"]
    outcomes = {}
    for service in ("sns.amazonaws.com", None, "aws-managed"):
        key_id = "alias/aws/sqs" if service == "aws-managed" else key_allowing(local_engine, service)
        queue_name = name("encrypted")
        queue_url = sqs.create_queue(QueueName=queue_name, Attributes={"KmsMasterKeyId": key_id})["QueueUrl"]
        queue_arn = arn_of_queue(queue_name)
        allow = service_may("sns.amazonaws.com", "sqs:SendMessage", queue_arn, topic_arn)
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy(allow)})
        sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
        )
        outcomes[service] = (queue_url, queue_arn)
    log = EngineLog(local_engine.state.engine_log)
    sns.publish(TopicArn=topic_arn, Message="probe")

    assert received(sqs, outcomes["sns.amazonaws.com"][0], wait_s=10)
    assert "key policy" in log.wait_for("delivery refused", outcomes[None][1])
    assert "AWS managed key alias/aws/sqs" in log.wait_for("delivery refused", outcomes["aws-managed"][1])
    assert received(sqs, outcomes[None][0], wait_s=2) == []
    assert received(sqs, outcomes["aws-managed"][0], wait_s=1) == []


# --- API Gateway -> Lambda (integration, authorizer) -----------------------------------------------

ANSWER_SOURCE = """
def lambda_handler(event, context):
    return {"statusCode": 200, "body": "integration ran"}
"""

AUTHORIZER_SOURCE = """
def lambda_handler(event, context):
    return {"isAuthorized": event.get("headers", {}).get("x-probe") == "yes"}
"""


INTERNAL_SERVER_ERROR = (500, {"message": "Internal Server Error"})


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, the body as JSON when it is JSON, else its bytes)."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=15
        ) as response:
            return response.status, _body(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _body(error.read())


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def http_api(
    local_engine: Any, make_function: Any, name: Callable[[str], str], *, authorizer_source: str | None = None
) -> dict[str, str]:
    """An HTTP API with GET /probe -> a Lambda integration (and, optionally, a Lambda authorizer)."""
    lam, apis = local_engine.client("lambda"), local_engine.client("apigatewayv2")
    function = make_function(ANSWER_SOURCE)
    function_arn = lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    api_id = apis.create_api(Name=name("api"), ProtocolType="HTTP")["ApiId"]
    integration = apis.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=function_arn, PayloadFormatVersion="2.0"
    )
    route: dict[str, Any] = {"AuthorizationType": "NONE"}
    made = {
        "api": api_id,
        "function": function,
        "url": f"{local_engine.endpoint_url}/_aws/execute-api/{api_id}/probe",
    }
    if authorizer_source is not None:
        authorizer_function = make_function(authorizer_source)
        authorizer_arn = lam.get_function(FunctionName=authorizer_function)["Configuration"]["FunctionArn"]
        authorizer_id = apis.create_authorizer(
            ApiId=api_id, Name="probe", AuthorizerType="REQUEST",
            AuthorizerUri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{authorizer_arn}/invocations",
            AuthorizerPayloadFormatVersion="2.0", EnableSimpleResponses=True,
            IdentitySource=["$request.header.x-probe"], AuthorizerResultTtlInSeconds=0,
        )["AuthorizerId"]  # fmt: skip
        route = {"AuthorizationType": "CUSTOM", "AuthorizerId": authorizer_id}
        made.update(authorizer=authorizer_id, authorizer_function=authorizer_function)
    apis.create_route(
        ApiId=api_id, RouteKey="GET /probe", Target=f"integrations/{integration['IntegrationId']}", **route
    )
    apis.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    return made


def test_api_invokes_its_integration_only_when_the_function_permission_allows_it(
    local_engine, make_function, name
):
    """API Gateway developer guide, "Troubleshooting issues with HTTP API Lambda integrations":
    without the permission the API answers 500 {"message":"Internal Server Error"}."""
    lam = local_engine.client("lambda")
    api = http_api(local_engine, make_function, name)
    lam.add_permission(
        FunctionName=api["function"], StatementId="api", Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api['api']}/*/*/probe",
    )  # fmt: skip

    assert get(api["url"]) == (200, b"integration ran")

    lam.remove_permission(FunctionName=api["function"], StatementId="api")
    log = EngineLog(local_engine.state.engine_log)
    assert get(api["url"]) == INTERNAL_SERVER_ERROR
    line = log.wait_for("delivery refused", "apigateway.amazonaws.com lambda:InvokeFunction", api["function"])
    assert f"{api['api']}/$default/GET/probe" in line


def test_api_invokes_its_authorizer_only_when_the_function_permission_allows_it(
    local_engine, make_function, name
):
    """The authorizer is invoked with <api>/authorizers/<id> as aws:SourceArn (the permission CDK's
    HttpLambdaAuthorizer writes); without it the API answers 500, as for an integration."""
    lam = local_engine.client("lambda")
    api = http_api(local_engine, make_function, name, authorizer_source=AUTHORIZER_SOURCE)
    lam.add_permission(
        FunctionName=api["function"], StatementId="api", Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api['api']}/*/*/probe",
    )  # fmt: skip
    lam.add_permission(
        FunctionName=api["authorizer_function"], StatementId="authorizer", Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api['api']}/authorizers/{api['authorizer']}",
    )  # fmt: skip

    assert get(api["url"], {"x-probe": "yes"}) == (200, b"integration ran")
    assert get(api["url"], {"x-probe": "no"})[0] == 403

    lam.remove_permission(FunctionName=api["authorizer_function"], StatementId="authorizer")
    log = EngineLog(local_engine.state.engine_log)
    assert get(api["url"], {"x-probe": "yes"}) == INTERNAL_SERVER_ERROR
    line = log.wait_for("delivery refused", api["authorizer_function"])
    assert f"{api['api']}/authorizers/{api['authorizer']}" in line
