"""The stage's customer-managed KMS key (useKmsCmk) that encrypts queues, topics and tables."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# AWS services that write into our encrypted queues and topics on our behalf: SNS (topic -> audit
# queue), EventBridge (rules -> topics, target DLQs) and CloudWatch (alarm actions -> alarm topic).
# An AWS-managed key's policy cannot grant them anything, which is why these need the CMK.
_SERVICE_WRITERS = ("sns.amazonaws.com", "events.amazonaws.com", "cloudwatch.amazonaws.com")


def stage_key(
    scope: Construct, construct_id: str, *, alias: str, stage_prefix: str, protect: bool
) -> kms.Key:
    """A rotating customer-managed key that AWS services of this account may encrypt messages with.

    `protect`: retained when its stack is deleted, with the longest deletion waiting period.
    """
    key = kms.Key(
        scope,
        construct_id,
        alias=alias,
        description=f"Encrypts the queues, topics and tables of the {stage_prefix} stage",
        enable_key_rotation=True,
        pending_window=Duration.days(30 if protect else 7),
        removal_policy=RemovalPolicy.RETAIN if protect else RemovalPolicy.DESTROY,
    )
    account = Stack.of(scope).account
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowAwsServicesToWriteEncryptedMessages",
            principals=[iam.ServicePrincipal(service) for service in _SERVICE_WRITERS],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy "*" means this key
            conditions={"StringEquals": {"aws:SourceAccount": account}},
        )
    )
    return key
