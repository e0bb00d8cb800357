"""Every delivery an AWS service makes into the stage on its behalf is allowed by the target's resource
policy (and, for a resource encrypted with the stage key, by the key policy), scoped with the
condition keys AWS documents for it; docs/service-deliveries.md is the table of these paths, and
names one test here per path.

A topic or queue policy replaces the service's default one, so a delivery the policy does not name
is refused on AWS while the local cloud used to deliver it anyway: the alarm topic held only its TLS
statement, so CloudWatch could not publish a single notification (issue 12, item 1).
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Stack
from constructs import IConstruct

from app.components.alarms import CLOUDWATCH
from app.components.events import EVENTBRIDGE, SNS
from tests import REPO_ROOT
from tests.infra.synth import STACK_KINDS, SynthesizedStage

DOC = REPO_ROOT / "docs" / "service-deliveries.md"
APIGATEWAY = "apigateway.amazonaws.com"
FIS = "fis.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"
KEY_USE = ["kms:Decrypt", "kms:GenerateDataKey*"]


# --- Reading the policies of the synthesized stage ---------------------------------------------


def resolved(stage: SynthesizedStage, value: Any) -> Any:
    """A policy fragment with every intrinsic replaced by its comparable string (SynthesizedStage.ref)."""
    if isinstance(value, list):
        return [resolved(stage, item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in ("Ref", "Fn::GetAtt", "Fn::ImportValue", "Fn::Join"):
            return stage.ref(value)
        return {key: resolved(stage, item) for key, item in value.items()}
    return value


def kind_of(construct: IConstruct) -> str:
    return Stack.of(construct).stack_name.rsplit("-", 1)[1]


def service_statements(
    stage: SynthesizedStage, statements: list[dict[str, Any]], service: str
) -> list[dict[str, Any]]:
    """The Allow statements of `statements` whose principal is `service`, resolved, Sid dropped."""
    found = []
    for statement in statements:
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = services if isinstance(services, list) else [services]
        if statement["Effect"] == "Allow" and service in services:
            found.append(
                {
                    k: resolved(stage, v)
                    for k, v in statement.items()
                    if k not in ("Sid", "Effect", "Principal")
                }
            )
    return found


def attached_policy(
    stage: SynthesizedStage, target: IConstruct, policy_type: str, targets_key: str
) -> list[dict[str, Any]]:
    """The statements of the policies of type `policy_type` attached to `target` (Topics / Queues)."""
    target_id = stage.logical_id(target)
    statements = [
        statement
        for policy in stage.resources(kind_of(target), policy_type).values()
        if {"Ref": target_id} in policy["Properties"][targets_key]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert statements, f"no {policy_type} on {target.node.path}"
    return statements


def topic_policy(stage: SynthesizedStage, topic: IConstruct) -> list[dict[str, Any]]:
    return attached_policy(stage, topic, "AWS::SNS::TopicPolicy", "Topics")


def queue_policy(stage: SynthesizedStage, queue: IConstruct) -> list[dict[str, Any]]:
    return attached_policy(stage, queue, "AWS::SQS::QueuePolicy", "Queues")


def key_policy(stage: SynthesizedStage) -> list[dict[str, Any]]:
    key = stage.stage.state.key
    assert key is not None, f"{stage.config.env_name} has no stage key"
    return list(
        stage.raw["state"]["Resources"][stage.logical_id(key)]["Properties"]["KeyPolicy"]["Statement"]
    )


def permissions(stage: SynthesizedStage, function: IConstruct, principal: str) -> list[str]:
    """The SourceArn of every Lambda permission granting `principal` the invocation of `function`."""
    found = []
    for kind in STACK_KINDS:
        for permission in stage.resources(kind, "AWS::Lambda::Permission").values():
            props = permission["Properties"]
            if props["Principal"] == principal and stage.ref(props["FunctionName"]) == stage.arn(function):
                assert props["Action"] == "lambda:InvokeFunction"
                found.append(stage.ref(props["SourceArn"]))
    return found


def arn(stage: SynthesizedStage, service: str, resource: str) -> str:
    return f"arn:AWS::Partition:{service}:{stage.config.region}:{stage.config.account}:{resource}"


def stage_alarms_condition(stage: SynthesizedStage) -> dict[str, Any]:
    return {
        "StringEquals": {"aws:SourceAccount": stage.config.account},
        "ArnLike": {"aws:SourceArn": arn(stage, "cloudwatch", f"alarm:{stage.config.prefix}-*")},
    }


# --- CloudWatch alarms -> the alarm topic ------------------------------------------------------


def test_cloudwatch_publishes_to_the_alarm_topic_for_the_stage_alarms_only(
    any_stage: SynthesizedStage,
) -> None:
    """CloudWatch alarm actions publish as cloudwatch.amazonaws.com, which the topic policy must name
    once it replaces SNS's default policy; aws:SourceArn (the alarms) and aws:SourceAccount keep other
    alarms out (Amazon SNS Developer Guide, "Example cases for Amazon SNS access control"; AWS
    Knowledge Center, "Why didn't I receive an SNS notification for my CloudWatch alarm trigger?")."""
    topic = any_stage.stage.observability.alarm_topic
    assert service_statements(any_stage, topic_policy(any_stage, topic), CLOUDWATCH) == [
        {
            "Action": "sns:Publish",
            "Resource": any_stage.logical_id(topic),
            "Condition": stage_alarms_condition(any_stage),
        }
    ]
    # The pattern covers every alarm the stage creates, and each of them notifies this topic.
    pattern = re.compile(re.escape(f"{any_stage.config.prefix}-") + ".*")
    alarms = any_stage.resources("observability", "AWS::CloudWatch::Alarm").values()
    assert alarms
    for alarm in alarms:
        props = alarm["Properties"]
        assert pattern.fullmatch(props["AlarmName"]), props["AlarmName"]
        assert [any_stage.ref(a) for a in props["AlarmActions"]] == [any_stage.logical_id(topic)]


def test_cloudwatch_may_use_the_stage_key_for_the_encrypted_alarm_topic(prod: SynthesizedStage) -> None:
    """CloudWatch must use the key of an encrypted topic it publishes to (Amazon SNS Developer Guide,
    "Key management": compatibility between event sources from AWS services and encrypted topics;
    AWS Knowledge Center, "How do I configure a CloudWatch alarm with an encrypted SNS topic?",
    with a Condition to narrow it), for the stage's alarms only."""
    topic = prod.stage.observability.alarm_topic
    props = prod.raw["observability"]["Resources"][prod.logical_id(topic)]["Properties"]
    assert prod.ref(props["KmsMasterKeyId"]) == prod.arn(prod.stage.state.key)  # type: ignore[arg-type]
    assert service_statements(prod, key_policy(prod), CLOUDWATCH) == [
        {"Action": KEY_USE, "Resource": "*", "Condition": stage_alarms_condition(prod)}
    ]


# --- EventBridge -> topics, the event-log function and the delivery DLQ ------------------------


def test_eventbridge_publishes_to_the_event_topics(any_stage: SynthesizedStage) -> None:
    """The topic policy names events.amazonaws.com for sns:Publish, without a Condition: "You can't
    use Condition blocks in Amazon SNS topic policies for EventBridge" (Amazon EventBridge User Guide,
    "Using resource-based policies for Amazon EventBridge", Amazon SNS permissions)."""
    for topic in any_stage.stage.compute.events.topics.values():
        assert service_statements(any_stage, topic_policy(any_stage, topic), EVENTBRIDGE) == [
            {"Action": "sns:Publish", "Resource": any_stage.logical_id(topic)}
        ]


def test_eventbridge_may_use_the_stage_key_for_encrypted_topics_and_the_delivery_dlq(
    prod: SynthesizedStage,
) -> None:
    """EventBridge uses the key of the encrypted topics and DLQ it writes to: the statement of the
    Amazon SNS Developer Guide ("Key management", event sources from AWS services), which documents no
    source condition for it."""
    events = prod.stage.compute.events
    key = prod.arn(prod.stage.state.key)  # type: ignore[arg-type]
    for topic in events.topics.values():
        props = prod.raw["functions"]["Resources"][prod.logical_id(topic)]["Properties"]
        assert prod.ref(props["KmsMasterKeyId"]) == key
    dlq = prod.raw["functions"]["Resources"][prod.logical_id(events.delivery_dlq)]["Properties"]
    assert prod.ref(dlq["KmsMasterKeyId"]) == key
    assert service_statements(prod, key_policy(prod), EVENTBRIDGE) == [{"Action": KEY_USE, "Resource": "*"}]


def test_eventbridge_invokes_the_event_log_function_for_its_rules_only(any_stage: SynthesizedStage) -> None:
    """A Lambda permission for events.amazonaws.com with the rule as SourceArn (Amazon EventBridge
    User Guide, "Using resource-based policies for Amazon EventBridge", AWS Lambda permissions)."""
    events = any_stage.stage.compute.events
    if events.event_log is None:  # eventAudit false: the rules send to the topics only
        assert not any_stage.config.event_audit
        return
    rules = {any_stage.arn(rule) for rule in events.rules.values()}
    assert sorted(permissions(any_stage, events.event_log.function, EVENTBRIDGE)) == sorted(rules)


def _has_targets(stage: SynthesizedStage, rule: IConstruct) -> bool:
    logical_id = stage.logical_id(rule)
    return any(
        "Targets" in template["Resources"].get(logical_id, {}).get("Properties", {})
        for template in stage.raw.values()
    )


def test_eventbridge_dead_letters_into_the_delivery_dlq_for_its_rules_only(
    any_stage: SynthesizedStage,
) -> None:
    """sqs:SendMessage for events.amazonaws.com with ArnEquals aws:SourceArn the rule (Amazon
    EventBridge User Guide, "Event retry policy and using dead-letter queues": granting permissions
    to the dead-letter queue)."""
    events = any_stage.stage.compute.events
    dlq = events.delivery_dlq
    found = service_statements(any_stage, queue_policy(any_stage, dlq), EVENTBRIDGE)
    # Rules with a target (prod's success rule has none: successTopic false, no event log).
    delivering = [rule for rule in events.rules.values() if _has_targets(any_stage, rule)]
    assert sorted(s["Condition"]["ArnEquals"]["aws:SourceArn"] for s in found) == sorted(
        any_stage.arn(rule) for rule in delivering
    )
    assert len(delivering) == (2 if any_stage.config.success_topic or any_stage.config.event_audit else 1)
    assert all(s["Action"] == "sqs:SendMessage" and s["Resource"] == any_stage.arn(dlq) for s in found)


# --- SNS -> the audit queue and the subscriptions' DLQs ------------------------------------------


def sns_senders(stage: SynthesizedStage, queue: IConstruct) -> list[str]:
    found = service_statements(stage, queue_policy(stage, queue), SNS)
    assert all(s["Action"] == "sqs:SendMessage" and s["Resource"] == stage.arn(queue) for s in found)
    return sorted(s["Condition"]["ArnEquals"]["aws:SourceArn"] for s in found)


def test_sns_delivers_to_the_audit_queue_from_the_event_topics_only(any_stage: SynthesizedStage) -> None:
    """sqs:SendMessage for sns.amazonaws.com with ArnEquals aws:SourceArn the topic (Amazon SNS
    Developer Guide, "Fanout to Amazon SQS queues": the queue policy of a subscribed queue)."""
    events = any_stage.stage.compute.events
    if events.audit_queue is None:  # eventAudit false: no audit queue, no subscription
        assert not any_stage.config.event_audit
        assert not any_stage.resources("functions", "AWS::SNS::Subscription")
        return
    topics = sorted(any_stage.logical_id(topic) for topic in events.topics.values())
    assert sns_senders(any_stage, events.audit_queue) == topics


def test_sns_delivers_to_the_alarm_inbox_from_the_alarm_topic_only(any_stage: SynthesizedStage) -> None:
    """The alarm topic's inbox (the drills' proof that a notification reached a subscriber) takes
    sqs:SendMessage from sns.amazonaws.com for the alarm topic only (same document as above)."""
    inboxes = [q for q in any_stage.stage.observability.node.find_all() if q.node.id == "Inbox"]
    assert len(inboxes) == 1
    alarm_topic = any_stage.stage.observability.alarm_topic
    assert sns_senders(any_stage, inboxes[0]) == [any_stage.logical_id(alarm_topic)]


def test_sns_dead_letters_each_subscription_from_its_own_topic_only(any_stage: SynthesizedStage) -> None:
    """The DLQ of a subscription takes sqs:SendMessage from sns.amazonaws.com for that topic (Amazon
    SNS Developer Guide, "Amazon SNS dead-letter queues": the DLQ's policy)."""
    events = any_stage.stage.compute.events
    # The event topics' only subscription is the audit queue's (eventAudit).
    topics = sorted(any_stage.logical_id(topic) for topic in events.topics.values())
    assert sns_senders(any_stage, events.delivery_dlq) == (topics if any_stage.config.event_audit else [])
    alarm_topic = any_stage.stage.observability.alarm_topic
    dlqs = [q for q in any_stage.stage.observability.node.find_all() if q.node.id == "NotificationDlq"]
    assert dlqs, "the stage has alarm subscribers (tests/infra/synth.py), so a notification DLQ"
    assert sns_senders(any_stage, dlqs[0]) == [any_stage.logical_id(alarm_topic)]


def test_sns_may_use_the_stage_key_for_the_encrypted_queues_it_writes(prod: SynthesizedStage) -> None:
    """SNS uses the key of the encrypted queues it delivers to: the statement of the Amazon SQS
    Developer Guide ("Configure KMS permissions for AWS services"), as documented."""
    assert service_statements(prod, key_policy(prod), SNS) == [
        {"Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}
    ]


# --- API Gateway -> the integrations and the authorizer ----------------------------------------


def test_api_gateway_invokes_each_integration_from_this_api_only(any_stage: SynthesizedStage) -> None:
    """A Lambda permission per route for apigateway.amazonaws.com with SourceArn the API's route
    (API Gateway Developer Guide, "Create AWS Lambda proxy integrations for HTTP APIs": API Gateway
    needs permission to invoke the function)."""
    api_id = any_stage.logical_id(any_stage.stage.api.api)
    compute = any_stage.stage.compute
    prefix = f"arn:AWS::Partition:execute-api:{any_stage.config.region}:{any_stage.config.account}:{api_id}"
    assert sorted(permissions(any_stage, compute.ingest.function, APIGATEWAY)) == [f"{prefix}/*/*/events"]
    assert sorted(permissions(any_stage, compute.redrive.function, APIGATEWAY)) == sorted(
        f"{prefix}/*/*/redrive/{route}" for route in ("cancel", "preview", "start", "status")
    )


def test_api_gateway_invokes_the_authorizer_from_this_api_only(dev: SynthesizedStage) -> None:
    """The Lambda authorizer's permission names the API's authorizer as SourceArn (API Gateway
    Developer Guide, "Control access to HTTP APIs with AWS Lambda authorizers")."""
    api = dev.stage.api
    assert api.api_key is not None
    (authorizer_id,) = dev.resources("api", "AWS::ApiGatewayV2::Authorizer")
    assert permissions(dev, api.api_key.function.function, APIGATEWAY) == [
        f"arn:AWS::Partition:execute-api:{dev.config.region}:{dev.config.account}:"
        f"{dev.logical_id(api.api)}/authorizers/{authorizer_id}"
    ]


# --- FIS -> the experiment role ---------------------------------------------------------------


def test_fis_assumes_the_experiment_role_for_this_accounts_experiments_only(dev: SynthesizedStage) -> None:
    """The trust policy allows fis.amazonaws.com with aws:SourceAccount and aws:SourceArn (AWS FIS
    User Guide, "IAM roles for AWS FIS experiments": the confused deputy conditions)."""
    role = dev.stage.observability.fis.role  # type: ignore[union-attr]
    trust = dev.raw["observability"]["Resources"][dev.logical_id(role)]["Properties"][
        "AssumeRolePolicyDocument"
    ]
    assert service_statements(dev, trust["Statement"], FIS) == [
        {
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": dev.config.account},
                "ArnLike": {"aws:SourceArn": arn(dev, "fis", "experiment/*")},
            },
        }
    ]


# --- The audit is complete ---------------------------------------------------------------------

# (principal, where its statement lives) -> the test above that checks it.
AUDITED: dict[tuple[str, str], str] = {
    (
        CLOUDWATCH,
        "AWS::SNS::TopicPolicy",
    ): "test_cloudwatch_publishes_to_the_alarm_topic_for_the_stage_alarms_only",
    (CLOUDWATCH, "AWS::KMS::Key"): "test_cloudwatch_may_use_the_stage_key_for_the_encrypted_alarm_topic",
    (EVENTBRIDGE, "AWS::SNS::TopicPolicy"): "test_eventbridge_publishes_to_the_event_topics",
    (
        EVENTBRIDGE,
        "AWS::KMS::Key",
    ): "test_eventbridge_may_use_the_stage_key_for_encrypted_topics_and_the_delivery_dlq",
    (
        EVENTBRIDGE,
        "AWS::Lambda::Permission",
    ): "test_eventbridge_invokes_the_event_log_function_for_its_rules_only",
    (
        EVENTBRIDGE,
        "AWS::SQS::QueuePolicy",
    ): "test_eventbridge_dead_letters_into_the_delivery_dlq_for_its_rules_only",
    (SNS, "AWS::SQS::QueuePolicy"): "test_sns_delivers_to_the_audit_queue_from_the_event_topics_only",
    (SNS, "AWS::KMS::Key"): "test_sns_may_use_the_stage_key_for_the_encrypted_queues_it_writes",
    (APIGATEWAY, "AWS::Lambda::Permission"): "test_api_gateway_invokes_each_integration_from_this_api_only",
    (FIS, "AWS::IAM::Role"): "test_fis_assumes_the_experiment_role_for_this_accounts_experiments_only",
    # Every function's execution role: Lambda runs the function as it (not a delivery).
    (LAMBDA, "AWS::IAM::Role"): "test_every_service_principal_in_the_stage_is_audited",
}


def granted_services(stage: SynthesizedStage) -> set[tuple[str, str]]:
    found = set()
    for kind in STACK_KINDS:
        for resource in stage.raw[kind]["Resources"].values():
            props, resource_type = resource.get("Properties", {}), resource["Type"]
            if resource_type == "AWS::Lambda::Permission":
                found.add((props["Principal"], resource_type))
            for key in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument"):
                if key not in props or resource_type == "AWS::IAM::Policy":
                    continue
                for statement in props[key]["Statement"]:
                    principal = statement.get("Principal", {})
                    services = principal.get("Service", []) if isinstance(principal, dict) else []
                    for service in services if isinstance(services, list) else [services]:
                        found.add((service, resource_type))
    return found


def test_every_service_principal_in_the_stage_is_audited(any_stage: SynthesizedStage) -> None:
    """A new delivery by an AWS service fails here until it has its row, its test and its statement."""
    unaudited = granted_services(any_stage) - set(AUDITED)
    assert unaudited == set(), f"service principals without an audited path: {sorted(unaudited)}"


def test_the_audit_table_names_these_tests() -> None:
    """docs/service-deliveries.md lists each path with the test that holds it: they exist here."""
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", DOC.read_text(encoding="utf-8")))
    defined = {name for name in globals() if name.startswith("test_")}
    assert named, "the audit table names no test"
    assert named <= defined, f"the table names tests that do not exist: {sorted(named - defined)}"
    assert set(AUDITED.values()) <= named, (
        f"paths missing from the table: {sorted(set(AUDITED.values()) - named)}"
    )
