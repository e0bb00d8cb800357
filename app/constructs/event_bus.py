"""The EventBridge bus of the stage and the routing of IngestionSuccess / IngestionFailure events.

Each detail type goes to its own SNS topic and to the event-log function; every target has a DLQ.
An "event audit" queue is subscribed (raw delivery) to both topics so that drills can count events.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from app.config import StageConfig
from app.constructs.nag import suppress
from app.constructs.sqs_with_dlq import Writers, secure_queue
from functions.common import names


def secure_topic(scope: Construct, construct_id: str, *, topic_name: str, key: kms.IKey | None) -> sns.Topic:
    """An SNS topic that refuses non-TLS publishers; encrypted with the stage CMK when there is one."""
    topic = sns.Topic(scope, construct_id, topic_name=topic_name, master_key=key, enforce_ssl=True)
    if key is None:
        suppress(
            topic,
            "AwsSolutions-SNS2",
            "EventBridge and CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed "
            "alias/aws/sns key; set useKmsCmk to encrypt topics with the stage's customer-managed key",
        )
    return topic


def failure_queue(scope: Construct, config: StageConfig, key: kms.IKey | None) -> sqs.Queue:
    """Where deliveries that EventBridge, SNS or asynchronous Lambda invocations give up on land."""
    queue = secure_queue(
        scope,
        "DeliveryDlq",
        queue_name=f"{config.prefix}-event-delivery-dlq",
        retention=Duration.days(14),
        key=key,
        writers=Writers.AWS_SERVICES,
    )
    reason = "this queue is itself the dead-letter queue of event deliveries and asynchronous invocations"
    suppress(queue, "AwsSolutions-SQS3", reason)
    suppress(queue, "Serverless-SQSRedrivePolicy", reason)
    return queue


class EventBus(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        key: kms.IKey | None,
        delivery_dlq: sqs.IQueue,
        event_log_function: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{config.prefix}-bus")
        self.delivery_dlq = delivery_dlq
        self.audit_queue = secure_queue(
            self,
            "AuditQueue",
            queue_name=f"{config.prefix}-event-audit",
            retention=Duration.days(1),
            key=key,
            writers=Writers.AWS_SERVICES,
        )
        reason = "drills read and delete audit copies; a failed audit read needs no DLQ"
        suppress(self.audit_queue, "AwsSolutions-SQS3", reason)
        suppress(self.audit_queue, "Serverless-SQSRedrivePolicy", reason)

        self.topics: dict[names.DetailType, sns.Topic] = {}
        self.rules: dict[names.DetailType, events.Rule] = {}
        for detail_type, slug in (
            (names.DetailType.SUCCESS, "success"),
            (names.DetailType.FAILURE, "failure"),
        ):
            topic = secure_topic(
                self, f"{detail_type.value}Topic", topic_name=f"{config.prefix}-{slug}", key=key
            )
            topic.add_subscription(
                subscriptions.SqsSubscription(
                    self.audit_queue, raw_message_delivery=True, dead_letter_queue=self.delivery_dlq
                )
            )
            rule = events.Rule(
                self,
                f"{detail_type.value}Rule",
                rule_name=f"{config.prefix}-{slug}",
                description=f"Routes {detail_type.value} events to the {slug} topic and the event log",
                event_bus=self.bus,
                event_pattern=events.EventPattern(
                    source=[names.EVENT_SOURCE], detail_type=[detail_type.value]
                ),
            )
            rule.add_target(targets.SnsTopic(topic, dead_letter_queue=self.delivery_dlq, retry_attempts=8))
            rule.add_target(
                targets.LambdaFunction(
                    event_log_function,
                    dead_letter_queue=self.delivery_dlq,
                    retry_attempts=8,
                    max_event_age=Duration.hours(2),
                )
            )
            self.topics[detail_type] = topic
            self.rules[detail_type] = rule
