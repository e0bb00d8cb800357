"""The stage's customer-managed KMS key (useKmsCmk) that encrypts queues, topics and tables."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from constructs import Construct


def stage_key(
    scope: Construct, construct_id: str, *, alias: str, stage_prefix: str, protect: bool
) -> kms.Key:
    """A rotating customer-managed key of the stage.

    Its policy starts with the account (IAM policies decide for the stage's own roles); each
    component that makes an AWS service deliver into a resource encrypted with it adds the statement
    that service needs (an AWS-managed key's policy cannot grant services anything, which is why
    those resources need this key): docs/service-deliveries.md lists them.
    `protect`: retained when its stack is deleted, with the longest deletion waiting period.
    """
    return kms.Key(
        scope,
        construct_id,
        alias=alias,
        description=f"Encrypts the queues, topics and tables of the {stage_prefix} stage",
        enable_key_rotation=True,
        pending_window=Duration.days(30 if protect else 7),
        removal_policy=RemovalPolicy.RETAIN if protect else RemovalPolicy.DESTROY,
    )
