"""The Lambda factory on a bare Stack: the function, its log group and role, and the grants that
give a queue or a table together with its key."""

from __future__ import annotations

import dataclasses
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs

from app.constructs.lambda_fn import CONSUME, CONSUME_AND_HOLD, SEND, LambdaFn
from functions.common import names
from tests.infra.bare_stack import FUNCTIONS, REGION, BareStack
from tests.infra.synth import Grant


def function(bare: BareStack, construct_id: str = "Fn", name: str = "probe", **kwargs: Any) -> LambdaFn:
    return LambdaFn(
        bare.stack,
        construct_id,
        settings=kwargs.pop("settings", FUNCTIONS),
        name=name,
        handler=names.Handler.RESET,
        description="a probe",
        timeout_seconds=7,
        **kwargs,
    )


def grant(actions: set[str], resources: set[str]) -> Grant:
    return frozenset(actions), frozenset(resources)


def test_a_function_gets_its_log_group_a_role_that_only_logs_and_the_settings(bare: BareStack) -> None:
    fn = function(bare, environment={names.EnvVar.TTL_DAYS: "3"})
    props = bare.props(fn.function)
    assert props["FunctionName"] == "ingestion-test-probe"
    assert (props["Runtime"], props["Architectures"], props["MemorySize"], props["Timeout"]) == (
        "python3.13",
        ["arm64"],
        512,
        7,
    )
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Layers"] == [
        f"arn:aws:lambda:{REGION}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:36"
    ]
    env = props["Environment"]["Variables"]
    assert env[names.EnvVar.TTL_DAYS.value] == "3"
    assert env[names.EnvVar.ENV_NAME.value] == "test"
    assert env[names.EnvVar.POWERTOOLS_LOG_LEVEL.value] == "INFO"
    group = bare.props(fn.log_group)
    assert (group["LogGroupName"], group["RetentionInDays"]) == ("/aws/lambda/ingestion-test-probe", 7)
    assert bare.raw["Resources"][bare.logical_id(fn.log_group)]["DeletionPolicy"] == "Delete"
    assert bare.grants(fn) == set()


def test_a_queue_grant_carries_the_key_of_an_encrypted_queue_only(bare: BareStack) -> None:
    key = kms.Key(bare.stack, "Key")
    encrypted = sqs.Queue(
        bare.stack, "Encrypted", encryption=sqs.QueueEncryption.KMS, encryption_master_key=key
    )
    managed = sqs.Queue(bare.stack, "Managed", encryption=sqs.QueueEncryption.KMS_MANAGED)
    producer, consumer, holder = (function(bare, label, label.lower()) for label in ("P", "C", "H"))
    producer.grant_queue(SEND, encrypted, managed)
    consumer.grant_queue(CONSUME, encrypted)
    holder.grant_queue(CONSUME_AND_HOLD, managed)
    queue, other, key_arn = bare.arn(encrypted), bare.arn(managed), bare.arn(key)
    assert bare.grants(producer) == {
        grant({"sqs:SendMessage"}, {queue, other}),
        # Amazon SQS Developer Guide, "Key management": producers need GenerateDataKey and Decrypt.
        grant({"kms:GenerateDataKey", "kms:Decrypt"}, {key_arn}),
    }
    assert bare.grants(consumer) == {
        grant({"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}, {queue}),
        grant({"kms:Decrypt"}, {key_arn}),
    }
    assert bare.grants(holder) == {
        grant(
            {
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            },
            {other},
        )
    }


def test_a_table_grant_carries_the_key_actions_of_its_reads_or_writes(bare: BareStack) -> None:
    key = kms.Key(bare.stack, "Key")
    partition = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    encrypted = dynamodb.Table(
        bare.stack, "Encrypted", partition_key=partition,
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED, encryption_key=key,
    )  # fmt: skip
    managed = dynamodb.Table(bare.stack, "Managed", partition_key=partition)
    reader, writer = function(bare, "Reader", "reader"), function(bare, "Writer", "writer")
    reader.grant_table(["dynamodb:GetItem", "dynamodb:Query"], encrypted)
    writer.grant_table(["dynamodb:UpdateItem"], encrypted)
    writer.grant_table(["dynamodb:PutItem"], managed)
    key_arn = bare.arn(key)
    assert bare.grants(reader) == {
        grant({"dynamodb:GetItem", "dynamodb:Query"}, {bare.arn(encrypted)}),
        grant({"kms:Decrypt"}, {key_arn}),
    }
    assert bare.grants(writer) == {
        grant({"dynamodb:UpdateItem"}, {bare.arn(encrypted)}),
        grant({"dynamodb:PutItem"}, {bare.arn(managed)}),
        grant({"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"}, {key_arn}),
    }


def test_asynchronous_failures_go_to_a_dead_letter_queue_whose_key_the_role_may_use(bare: BareStack) -> None:
    key = kms.Key(bare.stack, "Key")
    dlq = sqs.Queue(
        bare.stack, "Dlq", encryption=sqs.QueueEncryption.KMS, encryption_master_key=key,
        retention_period=Duration.days(14),
    )  # fmt: skip
    fn = function(bare, async_failure_queue=dlq)
    assert bare.ref(bare.props(fn.function)["DeadLetterConfig"]["TargetArn"]) == bare.arn(dlq)
    assert bare.grants(fn) == {
        grant({"sqs:SendMessage"}, {bare.arn(dlq)}),
        grant({"kms:GenerateDataKey", "kms:Decrypt"}, {bare.arn(key)}),
    }


def test_with_retries_set_failures_go_to_the_on_failure_destination(bare: BareStack) -> None:
    dlq = sqs.Queue(bare.stack, "Dlq", encryption=sqs.QueueEncryption.SQS_MANAGED)
    fn = function(bare, async_failure_queue=dlq, async_retry_attempts=0)
    assert "DeadLetterConfig" not in bare.props(fn.function)
    (config,) = bare.resources("AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    assert bare.ref(config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]) == bare.arn(dlq)


def test_retained_logs_survive_the_stack(bare: BareStack) -> None:
    fn = function(bare, settings=dataclasses.replace(FUNCTIONS, retain_logs=True))
    assert bare.raw["Resources"][bare.logical_id(fn.log_group)]["DeletionPolicy"] == "Retain"
