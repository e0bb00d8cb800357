"""SNS topics of the stage: TLS-only, encrypted with the stage's customer-managed key when there is one."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from app.constructs.nag import suppress


def secure_topic(scope: Construct, construct_id: str, *, topic_name: str, key: kms.IKey | None) -> sns.Topic:
    """An SNS topic that refuses non-TLS publishers; encrypted with `key` when there is one."""
    topic = sns.Topic(scope, construct_id, topic_name=topic_name, master_key=key, enforce_ssl=True)
    if key is None:
        suppress(
            topic,
            "AwsSolutions-SNS2",
            "EventBridge and CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed "
            "alias/aws/sns key; set useKmsCmk to encrypt topics with the stage's customer-managed key",
        )
    return topic
