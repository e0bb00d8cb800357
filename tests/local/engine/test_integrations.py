"""Engine conformance: API Gateway v2, EventBridge/SNS, Secrets Manager, CloudFormation and DynamoDB
behaviours the stage relies on, one test each."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from typing import Any

import pytest

from functions.common.names import EnvVar
from lab.harness import deploy
from lab.localcloud.engine import ACCOUNT_ID, REGION, EngineClients

ECHO_SOURCE = """
import json

def lambda_handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({
            "version": event.get("version"),
            "routeKey": event.get("routeKey"),
            "method": event["requestContext"]["http"]["method"],
            "path": event["rawPath"],
            "query": event.get("queryStringParameters"),
            "isBase64Encoded": event.get("isBase64Encoded"),
            "body": event.get("body"),
        }),
    }
"""


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_http_api_sends_payload_v2_and_base64_encodes_non_json_bodies(local_engine, make_function):
    lam = local_engine.client("lambda")
    apis = local_engine.client("apigatewayv2")
    function = make_function(ECHO_SOURCE)
    function_arn = lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    api_id = apis.create_api(Name=function, ProtocolType="HTTP")["ApiId"]
    integration = apis.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=function_arn, PayloadFormatVersion="2.0"
    )
    apis.create_route(
        ApiId=api_id, RouteKey="POST /events", Target=f"integrations/{integration['IntegrationId']}"
    )
    apis.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    # API Gateway invokes the function under its resource policy (without it: 500, see
    # test_service_deliveries.py).
    lam.add_permission(
        FunctionName=function, StatementId="api", Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_id}/*/*/events",
    )  # fmt: skip
    url = f"{local_engine.endpoint_url}/_aws/execute-api/{api_id}/events?x=1"

    status, as_json = _post(url, b'{"a": 1}', {"content-type": "application/json"})
    assert status == 200
    assert as_json == {
        "version": "2.0",
        "routeKey": "POST /events",
        "method": "POST",
        "path": "/events",
        "query": {"x": "1"},
        "isBase64Encoded": False,
        "body": '{"a": 1}',
    }

    _, as_bytes = _post(url, b"\x00raw bytes", {"content-type": "application/octet-stream"})
    assert as_bytes["isBase64Encoded"] is True
    assert base64.b64decode(as_bytes["body"]) == b"\x00raw bytes"

    # A JSON body that is not UTF-8 reaches the function decoded lossily, U+FFFD in place of the
    # bad byte: the ingest refuses a raw U+FFFD (400 invalid_utf8) for that reason.
    _, lossy = _post(url, b'{"a": "\xff"}', {"content-type": "application/json"})
    assert (lossy["isBase64Encoded"], lossy["body"]) == (False, '{"a": "\ufffd"}')


def test_sqs_refuses_characters_outside_its_set(local_engine, name):
    """SendMessage API reference: #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
    The ingest refuses U+FFFE/U+FFFF (422) because SQS would (tests/unit/functions/sqs_rules.py)."""
    sqs = local_engine.client("sqs")
    queue_url = sqs.create_queue(QueueName=name("chars"))["QueueUrl"]
    for body in ('{"a":"\uffff"}', '{"a":"\ufffe"}', '{"a":"\x01"}'):
        with pytest.raises(sqs.exceptions.ClientError) as refused:
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        assert refused.value.response["Error"]["Code"] == "InvalidMessageContents"
    sqs.send_message(QueueUrl=queue_url, MessageBody='{"a":"\ufffd\U0001f600\t"}')


def _service_may(service: str, action: str, resource: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": action, "Resource": resource}
            ],
        }
    )


def test_eventbridge_rule_delivers_to_sns_and_raw_sqs_subscription(local_engine, name, arn_of_queue, wait):
    events = local_engine.client("events")
    sns = local_engine.client("sns")
    sqs = local_engine.client("sqs")
    bus = name("bus")
    events.create_event_bus(Name=bus)
    topic_arn = sns.create_topic(Name=name("topic"))["TopicArn"]
    queue_name = name("audit")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    # The resource policies CDK writes for these two hops (the engine enforces them, as AWS does).
    sns.set_topic_attributes(
        TopicArn=topic_arn, AttributeName="Policy",
        AttributeValue=_service_may("events.amazonaws.com", "sns:Publish", topic_arn),
    )  # fmt: skip
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={"Policy": _service_may("sns.amazonaws.com", "sqs:SendMessage", arn_of_queue(queue_name))},
    )
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn_of_queue(queue_name),
        Attributes={"RawMessageDelivery": "true"},
    )  # fmt: skip
    events.put_rule(
        Name="failures", EventBusName=bus,
        EventPattern=json.dumps({"source": ["ingestion.lab"], "detail-type": ["IngestionFailure"]}),
    )  # fmt: skip
    events.put_targets(Rule="failures", EventBusName=bus, Targets=[{"Id": "topic", "Arn": topic_arn}])

    entries = [
        {
            "Source": "ingestion.lab",
            "DetailType": detail_type,
            "Detail": json.dumps({"n": n}),
            "EventBusName": bus,
        }
        for n, detail_type in enumerate(["IngestionSuccess", "IngestionFailure"])
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0

    messages = wait(
        lambda: sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages"),
        timeout=10,
        what="the failure event on the audit queue",
    )
    delivered = json.loads(messages[0]["Body"])  # raw delivery: the EventBridge event itself
    assert delivered["detail-type"] == "IngestionFailure"
    assert delivered["detail"] == {"n": 1}
    # Whatever else arrives is a copy of that event (the at-least-once mode may deliver the rule's
    # target or the subscription twice, with the same event id), never the success event.
    time.sleep(1)
    later = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )
    assert {json.loads(m["Body"])["id"] for m in later} <= {delivered["id"]}


def _deploy(cfn: Any, stack: str, template: dict[str, Any]) -> dict[str, str]:
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"])
    cfn.get_waiter("stack_create_complete").wait(
        StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def test_cloudformation_exports_are_imported_by_another_stack(local_engine, name):
    cfn = local_engine.client("cloudformation")
    sqs = local_engine.client("sqs")
    export = name("QueueArn")
    queue_name = name("exported")
    producer = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": queue_name}}},
        "Outputs": {"QueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}, "Export": {"Name": export}}},
    }
    consumer = {
        "Resources": {
            "Dlq": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "RedrivePolicy": {
                        "deadLetterTargetArn": {"Fn::ImportValue": export},
                        "maxReceiveCount": 3,
                    }
                },
            }
        },
        "Outputs": {"Url": {"Value": {"Ref": "Dlq"}}},
    }

    produced = _deploy(cfn, name("producer"), producer)
    consumed = _deploy(cfn, name("consumer"), consumer)

    assert produced["QueueArn"].endswith(f":{queue_name}")
    policy = sqs.get_queue_attributes(QueueUrl=consumed["Url"], AttributeNames=["RedrivePolicy"])[
        "Attributes"
    ]
    assert json.loads(policy["RedrivePolicy"])["deadLetterTargetArn"] == produced["QueueArn"]
    exports = {e["Name"]: e["Value"] for e in cfn.list_exports()["Exports"]}
    assert exports[export] == produced["QueueArn"]


def test_cloudformation_generated_secret_is_readable(local_engine, name):
    cfn = local_engine.client("cloudformation")
    secrets = local_engine.client("secretsmanager")
    template = {
        "Resources": {
            "ApiKey": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {
                    "GenerateSecretString": {"PasswordLength": 40},
                },
            }
        },
        "Outputs": {"Arn": {"Value": {"Ref": "ApiKey"}}},
    }

    outputs = _deploy(cfn, name("secret"), template)

    value = secrets.get_secret_value(SecretId=outputs["Arn"])["SecretString"]
    assert len(value) == 40
    assert value == secrets.get_secret_value(SecretId=outputs["Arn"])["SecretString"]


def test_dynamodb_failed_condition_returns_the_existing_item(local_engine, name):
    """The worker's conditional PutItem uses ReturnValuesOnConditionCheckFailure=ALL_OLD instead of
    a GetItem: the engine must return the item that blocked the write."""
    ddb = local_engine.client("dynamodb")
    table = name("state")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "idempotencyKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "idempotencyKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    item = {"idempotencyKey": {"S": "k"}, "status": {"S": "SUCCEEDED"}}
    ddb.put_item(TableName=table, Item=item)

    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as raised:
        ddb.put_item(
            TableName=table,
            Item={"idempotencyKey": {"S": "k"}, "status": {"S": "INFLIGHT"}},
            ConditionExpression="attribute_not_exists(idempotencyKey) OR #s = :failed",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":failed": {"S": "FAILED"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    assert raised.value.response["Item"] == item


def test_eventbridge_rule_invokes_a_lambda_target(local_engine, make_function, name, arn_of_queue):
    """The stage routes success/failure events to the event_log function as well."""
    events = local_engine.client("events")
    lam = local_engine.client("lambda")
    sqs = local_engine.client("sqs")
    queue_name = name("seen")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    function = make_function(
        """
        import json, os, boto3

        def lambda_handler(event, context):
            boto3.client("sqs").send_message(QueueUrl=os.environ["OUT"], MessageBody=json.dumps(event))
        """,
        environment={"OUT": queue_url},
        policy={
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn_of_queue(queue_name)}
            ],
        },
    )
    function_arn = lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    bus = name("bus")
    events.create_event_bus(Name=bus)
    pattern = json.dumps({"source": ["ingestion.lab"]})
    rule_arn = events.put_rule(Name="log", EventBusName=bus, EventPattern=pattern)["RuleArn"]
    lam.add_permission(
        FunctionName=function, StatementId="events", Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com", SourceArn=rule_arn,
    )  # fmt: skip
    events.put_targets(Rule="log", EventBusName=bus, Targets=[{"Id": "fn", "Arn": function_arn}])

    events.put_events(
        Entries=[
            {
                "Source": "ingestion.lab",
                "DetailType": "IngestionSuccess",
                "Detail": '{"n": 7}',
                "EventBusName": bus,
            }
        ]
    )

    deadline = time.monotonic() + 15
    received: list[dict[str, Any]] = []
    while not received and time.monotonic() < deadline:
        received = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    assert received, "the rule did not invoke the function"
    delivered = json.loads(received[0]["Body"])
    assert (delivered["detail-type"], delivered["detail"]) == ("IngestionSuccess", {"n": 7})


def test_api_key_of_an_api_key_stage_is_read_from_the_authorizer_secret(local_engine, name):
    """outputs.json carries apiKey for authMode apiKey: the lab finds the secret through the
    function that names it (API_KEY_SECRET_ARN) and reads it, as a deployed stage would be read."""
    cfn = local_engine.client("cloudformation")
    stack = name("authorizer")
    template = {
        "Resources": {
            "ApiKey": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {"GenerateSecretString": {"PasswordLength": 32}},
            },
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "lambda.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                },
            },
            "Authorizer": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.11",
                    "Handler": "index.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": "def handler(event, context):\n    return None\n"},
                    "Environment": {"Variables": {EnvVar.API_KEY_SECRET_ARN.value: {"Ref": "ApiKey"}}},
                },
            },
        },
        "Outputs": {"Arn": {"Value": {"Ref": "ApiKey"}}},
    }
    outputs = _deploy(cfn, stack, template)

    api_key = deploy._api_key(EngineClients(local_engine.info), [stack])

    secret = local_engine.client("secretsmanager").get_secret_value(SecretId=outputs["Arn"])["SecretString"]
    assert api_key == secret
    assert len(api_key) == 32
