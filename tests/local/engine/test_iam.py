"""Engine conformance: with AUTH=true a function calls AWS with its execution role's permissions only,
so a grant missing from the template fails locally as it would on AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab.localcloud.conformance import ConformanceError, check_queue_mapping_permissions
from lab.localcloud.engine import EngineClients

PROBE_SOURCE = """
import os
import boto3
from botocore.exceptions import ClientError

def lambda_handler(event, context):
    sqs = boto3.client("sqs")
    outcome = {}
    for label in ("ALLOWED", "FORBIDDEN"):
        try:
            sqs.send_message(QueueUrl=os.environ[label], MessageBody="probe")
            outcome[label] = "ok"
        except ClientError as error:
            outcome[label] = error.response["Error"]["Code"]
    return outcome
"""


def test_function_outside_its_role_gets_access_denied(local_engine, make_function, name, arn_of_queue):
    assert local_engine.info.auth, "the local tier runs the engine with IAM enforcement (AUTH=true)"
    sqs = local_engine.client("sqs")
    lam = local_engine.client("lambda")
    allowed, forbidden = name("allowed"), name("forbidden")
    allowed_url = sqs.create_queue(QueueName=allowed)["QueueUrl"]
    forbidden_url = sqs.create_queue(QueueName=forbidden)["QueueUrl"]
    function = make_function(
        PROBE_SOURCE,
        environment={"ALLOWED": allowed_url, "FORBIDDEN": forbidden_url},
        policy={
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn_of_queue(allowed)}
            ],
        },
    )

    outcome = json.loads(lam.invoke(FunctionName=function, Payload=b"{}")["Payload"].read())

    assert outcome["ALLOWED"] == "ok"
    assert outcome["FORBIDDEN"] in ("AccessDenied", "AccessDeniedException")
    assert int(sqs.get_queue_attributes(QueueUrl=forbidden_url, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"]) == 0  # fmt: skip


BATCH_PROBE_SOURCE = """
import os
import boto3

def lambda_handler(event, context):
    sqs = boto3.client("sqs")
    url = os.environ["QUEUE"]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": i, "MessageBody": i} for i in "ab"])
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
    sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=[{**e, "VisibilityTimeout": 0} for e in entries]
    )
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    return {"sent": len(sent["Successful"]), "deleted": len(deleted["Successful"])}
"""


def test_sqs_batch_calls_are_authorized_by_their_single_message_actions(
    local_engine, make_function, name, arn_of_queue
):
    """As on AWS, where IAM has no sqs:SendMessageBatch action (the redrive sends in batches)."""
    sqs = local_engine.client("sqs")
    lam = local_engine.client("lambda")
    queue = name("batch")
    queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    actions = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
    function = make_function(
        BATCH_PROBE_SOURCE,
        environment={"QUEUE": queue_url},
        policy={
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": arn_of_queue(queue)}],
        },
    )

    response = lam.invoke(FunctionName=function, Payload=b"{}")

    assert "FunctionError" not in response, response["Payload"].read()
    assert json.loads(response["Payload"].read()) == {"sent": 2, "deleted": 2}


def _mapping_template(queue: str, actions: list[str]) -> dict[str, Any]:
    statements = [{"Effect": "Allow", "Action": actions, "Resource": {"Fn::GetAtt": ["Queue", "Arn"]}}]
    return {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": queue}},
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
                    },
                    "Policies": [
                        {
                            "PolicyName": "poll",
                            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                        }
                    ],
                },
            },
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.11",
                    "Handler": "index.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": "def handler(event, context):\n    return None\n"},
                },
            },
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "FunctionName": {"Ref": "Function"},
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                },
            },
        }
    }


def test_deploy_refuses_a_queue_mapping_whose_role_cannot_poll(local_engine, name):
    """The engine's SQS mapping polls whatever the role allows; the lab's post-deploy check asks
    the engine's IAM simulator instead, so a missing grant fails locally as on AWS."""
    cfn = local_engine.client("cloudformation")
    clients = EngineClients(local_engine.info)
    complete = name("complete")
    partial = name("partial")
    for stack, actions in (
        (complete, ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]),
        (partial, ["sqs:ReceiveMessage", "sqs:GetQueueAttributes"]),
    ):
        cfn.create_stack(
            StackName=stack,
            TemplateBody=json.dumps(_mapping_template(name("q"), actions)),
            Capabilities=["CAPABILITY_IAM"],
        )
        cfn.get_waiter("stack_create_complete").wait(
            StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )

    assert len(check_queue_mapping_permissions(clients, [complete])) == 1
    with pytest.raises(ConformanceError, match="lacks sqs:DeleteMessage"):
        check_queue_mapping_permissions(clients, [partial])
