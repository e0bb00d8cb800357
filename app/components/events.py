"""Event routing: the stage's bus, and IngestionSuccess / IngestionFailure routed to their SNS topics
and (with the event audit) to the event-log function, every target with a dead-letter queue.

With the event audit (stage key eventAudit), an "event audit" queue is subscribed (raw delivery) to
both topics so that drills can count events; without it (prod: docs/performance.md#cost) the rules
send to the topics only. Without a success topic (stage key successTopic false, prod: no one
subscribes to it, and SNS bills every publish) IngestionSuccess stays on the bus, for rules of their
own; IngestionFailure always has its topic. The delivery DLQ also receives the asynchronous
failures of the functions that run in the background.

Who may deliver where (docs/service-deliveries.md): EventBridge publishes to the topics (CDK's target
adds the topic policy statement, without a condition: the EventBridge User Guide, "Using
resource-based policies for Amazon EventBridge", Amazon SNS permissions, says Condition blocks cannot
be used there), invokes the event-log function and dead-letters into the delivery DLQ only for its
rules (aws:SourceArn); SNS delivers into the audit queue and the delivery DLQ only for its topics
(aws:SourceArn). With the stage key both services must also use the key: those two statements are
stated here (the documented ones, which CDK's target and subscription add as well).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from app.constructs.lambda_fn import FunctionSettings, LambdaFn
from app.constructs.nag import suppress
from app.constructs.queues import Writers, parking_queue, secure_queue
from app.constructs.topics import secure_topic
from functions.common import names

# EventBridge retries a failed target delivery this many times before its dead-letter queue.
TARGET_RETRY_ATTEMPTS = 8


EVENTBRIDGE = "events.amazonaws.com"
SNS = "sns.amazonaws.com"


def allow_services_to_encrypt(key: kms.IKey) -> None:
    """EventBridge (into the encrypted topics and delivery DLQ) and SNS (into the encrypted audit
    queue and delivery DLQ) use the stage key: the statements of the Amazon SNS Developer Guide
    ("Key management": event sources from AWS services and encrypted topics) and the Amazon SQS
    Developer Guide ("Configure KMS permissions for AWS services"), as documented, without source
    conditions (AWS documents none that these deliveries carry to KMS)."""
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(EVENTBRIDGE)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy "*" means this key
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(SNS)],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],
        )
    )


class EventRouting(Construct):
    """The bus the worker publishes to, its rules, topics and targets, and where failed deliveries go."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionSettings,
        key: kms.IKey | None,
        audit: bool = True,
        success_topic: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = functions.prefix
        self.delivery_dlq = parking_queue(
            self,
            "DeliveryDlq",
            queue_name=f"{prefix}-event-delivery-dlq",
            key=key,
            writers=Writers.AWS_SERVICES,
            reason="this queue is itself the dead-letter queue of event deliveries and of asynchronous "
            "invocations",
        )
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{prefix}-bus")
        self.event_log: LambdaFn | None = None
        self.audit_queue: sqs.Queue | None = None
        self.audit_queue_name: str | None = None
        if audit:
            self.event_log = LambdaFn(
                self,
                "EventLog",
                settings=functions,
                name="event-log",
                handler=names.Handler.EVENT_LOG,
                description="Logs IngestionSuccess/IngestionFailure events as structured JSON",
                timeout_seconds=10,
                async_failure_queue=self.delivery_dlq,
            )
            self.audit_queue_name = f"{prefix}-event-audit"
            self.audit_queue = secure_queue(
                self,
                "AuditQueue",
                queue_name=self.audit_queue_name,
                retention=Duration.days(1),
                key=key,
                writers=Writers.AWS_SERVICES,
            )
            reason = "drills read and delete audit copies; a failed audit read needs no DLQ"
            suppress(self.audit_queue, "AwsSolutions-SQS3", reason)
            suppress(self.audit_queue, "Serverless-SQSRedrivePolicy", reason)
        if key is not None:
            allow_services_to_encrypt(key)

        self.topics: dict[names.DetailType, sns.Topic] = {}
        self.rules: dict[names.DetailType, events.Rule] = {}
        # Without a success topic (and no event log) the success rule has no target: it is kept for
        # the dashboard's MatchedEvents series of the detail type, and costs nothing.
        for detail_type, slug in (
            (names.DetailType.SUCCESS, "success"),
            (names.DetailType.FAILURE, "failure"),
        ):
            with_topic = success_topic or detail_type is not names.DetailType.SUCCESS
            topic, rule = self._route(detail_type, slug, prefix, key, with_topic=with_topic)
            self.rules[detail_type] = rule
            if topic is not None:
                self.topics[detail_type] = topic

    def _route(
        self, detail_type: names.DetailType, slug: str, prefix: str, key: kms.IKey | None, *, with_topic: bool
    ) -> tuple[sns.Topic | None, events.Rule]:
        topic = None
        if with_topic:
            topic = secure_topic(self, f"{detail_type.value}Topic", topic_name=f"{prefix}-{slug}", key=key)
            if self.audit_queue is not None:
                topic.add_subscription(
                    subscriptions.SqsSubscription(
                        self.audit_queue, raw_message_delivery=True, dead_letter_queue=self.delivery_dlq
                    )
                )
        destinations = [f"the {slug} topic"] if topic else []
        destinations += ["the event log"] if self.event_log else []
        rule = events.Rule(
            self,
            f"{detail_type.value}Rule",
            rule_name=f"{prefix}-{slug}",
            description=f"Routes {detail_type.value} events to " + " and ".join(destinations)
            if destinations
            else f"Matches {detail_type.value} events (counted on the dashboard; no target)",
            event_bus=self.bus,
            event_pattern=events.EventPattern(source=[names.EVENT_SOURCE], detail_type=[detail_type.value]),
        )
        if not destinations:
            suppress(rule, "Serverless-EventBusDLQ", "the rule has no target, so no delivery to dead-letter")
        if topic is not None:
            dlq, retries = self.delivery_dlq, TARGET_RETRY_ATTEMPTS
            rule.add_target(targets.SnsTopic(topic, dead_letter_queue=dlq, retry_attempts=retries))
        if self.event_log is not None:
            rule.add_target(
                targets.LambdaFunction(
                    self.event_log.function,
                    dead_letter_queue=self.delivery_dlq,
                    retry_attempts=TARGET_RETRY_ATTEMPTS,
                    max_event_age=Duration.hours(2),
                )
            )
        return topic, rule
