"""Event routing on a bare Stack: each detail type to its topic and to the event log, with DLQs."""

from __future__ import annotations

from app.components.events import TARGET_RETRY_ATTEMPTS, EventRouting
from functions.common import names
from tests.infra.bare_stack import FUNCTIONS, BareStack


def test_each_detail_type_goes_to_its_topic_and_the_event_log_with_a_dead_letter_queue(
    bare: BareStack,
) -> None:
    routing = EventRouting(bare.stack, "Events", functions=FUNCTIONS, key=None)
    event_log, audit_queue = routing.event_log, routing.audit_queue
    assert event_log is not None
    assert audit_queue is not None
    assert bare.props(routing.bus)["Name"] == "ingestion-test-bus"
    for detail, slug in ((names.DetailType.SUCCESS, "success"), (names.DetailType.FAILURE, "failure")):
        rule = bare.props(routing.rules[detail])
        assert rule["Name"] == f"ingestion-test-{slug}"
        assert rule["EventPattern"] == {"source": [names.EVENT_SOURCE], "detail-type": [detail.value]}
        targets = {bare.ref(t["Arn"]): t for t in rule["Targets"]}
        assert set(targets) == {
            bare.logical_id(routing.topics[detail]),
            bare.arn(event_log.function),
        }
        for target in targets.values():
            assert bare.ref(target["DeadLetterConfig"]["Arn"]) == bare.arn(routing.delivery_dlq)
            assert target["RetryPolicy"]["MaximumRetryAttempts"] == TARGET_RETRY_ATTEMPTS
    subscriptions = list(bare.resources("AWS::SNS::Subscription").values())
    assert len(subscriptions) == 2
    for subscription in subscriptions:
        props = subscription["Properties"]
        assert (props["Protocol"], props["RawMessageDelivery"]) == ("sqs", True)
        assert bare.ref(props["Endpoint"]) == bare.arn(audit_queue)
        assert bare.ref(props["RedrivePolicy"]["deadLetterTargetArn"]) == bare.arn(routing.delivery_dlq)
    assert bare.props(audit_queue)["MessageRetentionPeriod"] == 86_400
    assert bare.props(routing.delivery_dlq)["QueueName"] == "ingestion-test-event-delivery-dlq"


def test_without_the_event_audit_the_rules_send_to_their_topics_only(bare: BareStack) -> None:
    """eventAudit false (prod): no event-log function, no audit queue and no subscription; each rule
    still sends its detail type to its SNS topic, with the delivery DLQ."""
    routing = EventRouting(bare.stack, "Events", functions=FUNCTIONS, key=None, audit=False)
    assert (routing.event_log, routing.audit_queue, routing.audit_queue_name) == (None, None, None)
    assert not bare.resources("AWS::Lambda::Function")
    assert not bare.resources("AWS::SNS::Subscription")
    assert [bare.props(q)["QueueName"] for q in (routing.delivery_dlq,)] == [
        "ingestion-test-event-delivery-dlq"
    ]
    assert len(bare.resources("AWS::SQS::Queue")) == 1
    for detail in (names.DetailType.SUCCESS, names.DetailType.FAILURE):
        (target,) = bare.props(routing.rules[detail])["Targets"]
        assert bare.ref(target["Arn"]) == bare.logical_id(routing.topics[detail])
        assert bare.ref(target["DeadLetterConfig"]["Arn"]) == bare.arn(routing.delivery_dlq)


def test_without_a_success_topic_success_events_stay_on_the_bus(bare: BareStack) -> None:
    """successTopic false with eventAudit false (prod): no success topic; the success rule has no
    target (kept for the dashboard's MatchedEvents); the failure rule still sends to its topic."""
    routing = EventRouting(
        bare.stack, "Events", functions=FUNCTIONS, key=None, audit=False, success_topic=False
    )
    assert set(routing.topics) == {names.DetailType.FAILURE}
    (topic,) = bare.resources("AWS::SNS::Topic").values()
    assert topic["Properties"]["TopicName"] == "ingestion-test-failure"
    assert "Targets" not in bare.props(routing.rules[names.DetailType.SUCCESS])
    (target,) = bare.props(routing.rules[names.DetailType.FAILURE])["Targets"]
    assert bare.ref(target["Arn"]) == bare.logical_id(routing.topics[names.DetailType.FAILURE])


def test_without_a_success_topic_the_event_log_still_gets_success_events(bare: BareStack) -> None:
    routing = EventRouting(bare.stack, "Events", functions=FUNCTIONS, key=None, success_topic=False)
    assert names.DetailType.SUCCESS not in routing.topics
    event_log = routing.event_log
    assert event_log is not None
    (target,) = bare.props(routing.rules[names.DetailType.SUCCESS])["Targets"]
    assert bare.ref(target["Arn"]) == bare.arn(event_log.function)
