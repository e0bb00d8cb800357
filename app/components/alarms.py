"""The stage's alarms: the topic they notify and its subscribers, and the alarm table (one row per
alarm, each linking its runbook in ops/runbooks/)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from app.config import AlarmSettings
from app.constructs.alarms import AlarmSpec
from app.constructs.dashboard import lab_metric
from app.constructs.nag import suppress
from app.constructs.queues import Writers, parking_queue, secure_queue
from app.constructs.topics import secure_topic
from functions.common import names

# Alarms that mean a drill went beyond its blast radius (messages dead-lettered or backing up):
# they stop FIS experiments. Worker errors are the drills' intended effect, so they do not.
FIS_STOP_ALARMS = ("dlq-depth", "dlq-age", "main-queue-age")


CLOUDWATCH = "cloudwatch.amazonaws.com"
SNS = "sns.amazonaws.com"


def alarm_inbox_name(stage_prefix: str) -> str:
    """The alarm topic's SQS subscriber, by a deterministic name the checks role is granted."""
    return f"{stage_prefix}-alarm-inbox"


def alarm_topic_name(stage_prefix: str) -> str:
    return f"{stage_prefix}-alarms"


def alarm_arn_pattern(scope: IConstruct, stage_prefix: str) -> str:
    """Every alarm of the stage: AlarmFactory names them `<stage prefix>-<slug>`."""
    return Stack.of(scope).format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"{stage_prefix}-*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def from_stage_alarms(scope: IConstruct, stage_prefix: str) -> dict[str, dict[str, str]]:
    """The condition that limits CloudWatch to acting for this account's alarms of this stage (the
    confused-deputy protection of the IAM User Guide, "aws:SourceArn" / "aws:SourceAccount")."""
    return {
        "StringEquals": {"aws:SourceAccount": Stack.of(scope).account},
        "ArnLike": {"aws:SourceArn": alarm_arn_pattern(scope, stage_prefix)},
    }


class AlarmTopic(Construct):
    """The topic every alarm notifies (ALARM and OK), and its subscribers: the inbox queue, where the
    drills (and the pipeline's gameday) see each notification arrive, and the email and webhook
    subscribers, whose rejected notifications are kept in a dead-letter queue rather than dropped.

    A topic policy replaces SNS's default one (which lets the owner account's services publish), so
    the topic says itself who may deliver into it: CloudWatch, for the stage's alarms only (Amazon
    SNS Developer Guide, "Example cases for Amazon SNS access control": CloudWatch alarms publishing
    with aws:SourceArn). With the stage key, CloudWatch must also use the key to publish (SNS
    Developer Guide, "Key management": compatibility between event sources from AWS services and
    encrypted topics), and SNS to write rejected notifications into the encrypted DLQ.
    docs/service-deliveries.md lists every such delivery of the stage.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_prefix: str,
        key: kms.IKey | None,
        email: str | None,
        webhook_url: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        topic_name = alarm_topic_name(stage_prefix)
        self.topic = secure_topic(self, "Topic", topic_name=topic_name, key=key)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisStage",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=from_stage_alarms(self, stage_prefix),
            )
        )
        if key is not None:
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="CloudWatchAlarmsPublishToTheEncryptedAlarmTopic",
                    principals=[iam.ServicePrincipal(CLOUDWATCH)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],  # in a key policy "*" means this key
                    # Built in the key's own stack, so the key policy references nothing here.
                    conditions=from_stage_alarms(key, stage_prefix),
                )
            )
        if key is not None:
            # SNS writes into the encrypted inbox (and rejected notifications into the encrypted
            # DLQ) on the topic's behalf (Amazon SQS Developer Guide, "Configure KMS permissions for
            # AWS services"): the documented statement, the one CDK's SQS subscriptions add for the
            # event topics.
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal(SNS)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=["*"],
                )
            )
        # A queue subscribed to the topic: proof, readable by the checks role, that a notification
        # reached a subscriber (a drill that read only alarm states passed while nobody was told).
        # Kept a day: only drills read it, each deleting what it reads.
        self.inbox = secure_queue(
            self,
            "Inbox",
            queue_name=alarm_inbox_name(stage_prefix),
            retention=Duration.days(1),
            key=key,
            writers=Writers.AWS_SERVICES,
        )
        reason = "the drills read and delete the alarm notifications; a failed read needs no DLQ"
        suppress(self.inbox, "AwsSolutions-SQS3", reason)
        suppress(self.inbox, "Serverless-SQSRedrivePolicy", reason)
        self.topic.add_subscription(subscriptions.SqsSubscription(self.inbox, raw_message_delivery=True))
        # CDK creates the subscription under the queue, so this acknowledges it alone.
        suppress(
            self.inbox,
            "Serverless-SNSRedrivePolicy",
            "an SQS endpoint of the same account: SNS retries it 100,010 times over 23 days (Amazon SNS "
            "Developer Guide, 'Amazon SNS message delivery retries'), and a notification the inbox "
            "misses only fails the drill that waits for it",
        )
        if not (email or webhook_url):
            return
        notification_dlq = parking_queue(
            self,
            "NotificationDlq",
            queue_name=f"{stage_prefix}-alarm-notification-dlq",
            key=key,
            writers=Writers.AWS_SERVICES,
            reason="this queue is itself the dead-letter queue of the alarm topic's subscriptions",
        )
        if email:
            self.topic.add_subscription(
                subscriptions.EmailSubscription(email, dead_letter_queue=notification_dlq)
            )
        if webhook_url:
            self.topic.add_subscription(
                subscriptions.UrlSubscription(webhook_url, dead_letter_queue=notification_dlq)
            )


def iterator_age(function: lambda_.IFunction) -> cloudwatch.Metric:
    """How far behind its stream a stream-mapped function is: the age of the last record of each
    batch when the function got it, in milliseconds (AWS Lambda Developer Guide, "Monitoring
    functions": IteratorAge)."""
    return cloudwatch.Metric(
        namespace="AWS/Lambda",
        metric_name="IteratorAge",
        dimensions_map={"FunctionName": function.function_name},
        statistic="Maximum",
    )


def stage_alarms(
    *,
    queue: sqs.IQueue,
    dlq: sqs.IQueue,
    worker: lambda_.IFunction,
    ingest: lambda_.IFunction,
    relay: lambda_.IFunction,
    relay_failures: sqs.IQueue,
    thresholds: AlarmSettings,
) -> list[AlarmSpec]:
    """Every alarm of the stage: slug, metric, threshold, what it means, and its runbook."""
    return [
        AlarmSpec(
            "dlq-depth",
            dlq.metric_approximate_number_of_messages_visible(statistic="Maximum"),
            thresholds.dlq_visible_threshold,
            "Messages are in the dead-letter queue",
            "poison-pill",
        ),
        AlarmSpec(
            "dlq-age",
            dlq.metric_approximate_age_of_oldest_message(statistic="Maximum"),
            thresholds.dlq_age_seconds,
            "The oldest dead-lettered message is waiting for a redrive",
            "poison-pill",
        ),
        AlarmSpec(
            "main-queue-age",
            queue.metric_approximate_age_of_oldest_message(statistic="Maximum"),
            thresholds.main_queue_age_seconds,
            "The ingestion queue is falling behind (age of oldest message)",
            "backlog",
        ),
        AlarmSpec(
            "main-queue-visible",
            queue.metric_approximate_number_of_messages_visible(statistic="Maximum"),
            thresholds.main_queue_visible_threshold,
            "The ingestion queue backlog is growing (visible messages)",
            "backlog",
        ),
        AlarmSpec(
            "worker-errors",
            worker.metric_errors(statistic="Sum"),
            thresholds.lambda_errors_threshold,
            "The worker function fails (whole batches return to the queue)",
            "timeout-vs-visibility",
        ),
        AlarmSpec(
            "worker-throttles",
            worker.metric_throttles(statistic="Sum"),
            thresholds.lambda_throttles_threshold,
            "The worker function is throttled",
            "throttling",
        ),
        AlarmSpec(
            "ingest-errors",
            ingest.metric_errors(statistic="Sum"),
            thresholds.lambda_errors_threshold,
            "The ingest function fails (callers get 5xx)",
            "poison-pill",
        ),
        AlarmSpec(
            "ingest-throttles",
            ingest.metric_throttles(statistic="Sum"),
            thresholds.lambda_throttles_threshold,
            "The ingest function is throttled (callers get 429/5xx)",
            "throttling",
        ),
        AlarmSpec(
            "redrive-quarantined",
            lab_metric(names.MetricName.REDRIVE_QUARANTINED),
            thresholds.quarantine_threshold,
            "Redrive quarantined messages that reached maxRedrivesPerMessage",
            "redrive-quarantine",
        ),
        AlarmSpec(
            "idempotency-conflicts",
            lab_metric(names.MetricName.IDEMPOTENCY_CONFLICTS),
            thresholds.idempotency_conflict_threshold,
            "A key was reused with another payload (parked in the DLQ; the first record stands)",
            "idempotency-conflict",
        ),
        AlarmSpec(
            "relay-failures",
            relay_failures.metric_approximate_number_of_messages_visible(statistic="Maximum"),
            thresholds.dlq_visible_threshold,
            "The event relay gave up on stream records: their events are not published until replayed",
            "event-relay",
        ),
        AlarmSpec(
            "relay-errors",
            relay.metric_errors(statistic="Sum"),
            thresholds.lambda_errors_threshold,
            "The event relay fails (its stream batch is retried; events are delayed)",
            "event-relay",
        ),
        AlarmSpec(
            "relay-iterator-age",
            iterator_age(relay),
            thresholds.relay_iterator_age_seconds * 1000,
            "Events lag their records: the relay is behind the state table's stream (milliseconds)",
            "event-relay",
        ),
    ]
