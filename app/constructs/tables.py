"""DynamoDB tables of the stage: on-demand, point-in-time recovery, TTL, encrypted, protected on demand."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct


def durable_table(
    scope: Construct,
    construct_id: str,
    *,
    table_name: str,
    partition_key: str,
    ttl_attribute: str,
    key: kms.IKey | None,
    protect: bool,
    stream: dynamodb.StreamViewType | None = None,
) -> dynamodb.Table:
    """A table keyed by one string attribute whose items expire on `ttl_attribute`.

    `key`: the stage's customer-managed key, or None for the AWS-managed aws/dynamodb key.
    `protect`: deletion protection on, and the table retained when its stack is deleted.
    `stream`: what a change record of the table's stream carries, or None for no stream.
    """
    return dynamodb.Table(
        scope,
        construct_id,
        table_name=table_name,
        partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        time_to_live_attribute=ttl_attribute,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED if key else dynamodb.TableEncryption.AWS_MANAGED,
        encryption_key=key,
        deletion_protection=protect,
        removal_policy=RemovalPolicy.RETAIN if protect else RemovalPolicy.DESTROY,
        stream=stream,
    )
