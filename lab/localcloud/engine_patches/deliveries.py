"""Deliveries made by a service principal are refused when the target's resource policy (and, for a
KMS-encrypted target, its key policy) does not allow them, as on AWS, and the refusal is logged
(`lab-engine ... delivery refused: <who> <action> on <target> (source <arn>): <why>`).

What ministack 1.5.33 checks by itself: SNS -> SQS against the queue policy (sns.py
_deliver_to_sqs, logged as "SNS fanout: queue policy denies delivery"). What it does not, corrected
here:
- CloudWatch alarm actions -> SNS: published whatever the topic policy says;
- EventBridge rule -> SNS / SQS / Lambda targets: delivered whatever the target's policy says;
- SNS -> an SQS queue encrypted with a KMS key: the key policy is not consulted;
- API Gateway (HTTP API) -> the Lambda integration and the Lambda authorizer: invoked whatever the
  function's resource policy says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ministack.core.arn import execute_api_arn
from ministack.services import apigateway, cloudwatch, eventbridge, lambda_svc, sns, sqs

from .engine_hooks import LOG, require
from .service_policies import ServiceDelivery, key_refusal, refusal

CLOUDWATCH = "cloudwatch.amazonaws.com"
EVENTBRIDGE = "events.amazonaws.com"
SNS = "sns.amazonaws.com"
API_GATEWAY = "apigateway.amazonaws.com"
# The answer of an HTTP API whose integration or authorizer it may not invoke (API Gateway
# developer guide, "Troubleshooting issues with HTTP API Lambda integrations",
# docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-lambda.html).
INTERNAL_SERVER_ERROR = (500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}')
ALARM_ACTION_FIELDS = {
    "ALARM": "AlarmActions",
    "OK": "OKActions",
    "INSUFFICIENT_DATA": "InsufficientDataActions",
}


def refused(delivery: ServiceDelivery, reason: str | None) -> bool:
    if reason:
        LOG.warning("delivery refused: %s: %s", delivery.describe(), reason)
    return bool(reason)


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


# --- CloudWatch alarm actions -> SNS ------------------------------------------------------------


def alarm_may_notify(alarm: dict[str, Any], topic_arn: str) -> bool:
    """CloudWatch publishes as cloudwatch.amazonaws.com with the alarm as aws:SourceArn; the topic
    policy must allow it and, for an encrypted topic, the key policy too (CloudWatch user guide,
    "Using Amazon SNS topics",
    docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Notify_Users_Alarm_Changes.html).
    A topic whose policy was replaced (CDK's enforceSSL writes a policy of its own) no longer has
    SNS's default statement that admits same-account services."""
    found = _topic_policy(topic_arn)
    if found is None:
        return True  # the engine's own dispatch reports the missing topic
    kind, topic_policy, key_id = found
    alarm_arn = str(alarm.get("AlarmArn", ""))
    account = _account_of(alarm_arn)
    delivery = ServiceDelivery(
        CLOUDWATCH, "sns:Publish", topic_arn, alarm_arn, account, extra_keys={"aws:SourceOwner": account}
    )
    return not refused(delivery, refusal(delivery, topic_policy, kind, key_id))


def alarm_actions_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def dispatch(alarm: dict[str, Any], old_state: str, new_state: str, reason: str) -> Any:
        field = ALARM_ACTION_FIELDS.get(new_state)
        actions = list(alarm.get(field) or []) if field else []
        allowed = [a for a in actions if ":sns:" not in a or alarm_may_notify(alarm, a)]
        if field and allowed != actions:
            alarm = {**alarm, field: allowed}
        return original(alarm, old_state, new_state, reason)

    return dispatch


# --- EventBridge rule targets -> SNS, SQS, Lambda ------------------------------------------------


def target_refusal(target_arn: str, rule: dict[str, Any]) -> tuple[ServiceDelivery, str | None] | None:
    """EventBridge delivers to Lambda, SNS and SQS targets under their resource policies, with the
    rule as aws:SourceArn (EventBridge user guide, "Using resource-based policies for Amazon
    EventBridge", docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html)."""
    service = target_arn.split(":")[2] if target_arn.count(":") >= 5 else ""
    rule_arn = str(rule.get("Arn", ""))
    check = TARGET_CHECKS.get(service)
    if check is None or ":scheduler:" in rule_arn:
        # Other target types, and EventBridge Scheduler, deliver with an execution role instead.
        return None
    action, policy_of = check
    delivery = ServiceDelivery(
        EVENTBRIDGE,
        action,
        target_arn,
        rule_arn,
        _account_of(rule_arn),
        policy_request_has_source=service != "sns",
        key_request_has_source=False,
    )
    found = policy_of(target_arn)
    if found is None:
        return None  # the engine's own dispatch reports a missing target
    kind, resource_policy, key_id = found
    return delivery, refusal(delivery, resource_policy, kind, key_id)


def _topic_policy(arn: str) -> tuple[str, Any, str | None] | None:
    topic = sns._topic_by_arn_any_scope(arn)
    if topic is None:
        return None
    attributes = topic.get("attributes", {})
    return "topic policy", attributes.get("Policy"), attributes.get("KmsMasterKeyId")


def _queue_policy(arn: str) -> tuple[str, Any, str | None] | None:
    queue = sqs._queue_by_arn(arn)
    if queue is None:
        return None
    attributes = queue.get("attributes", {})
    return "queue policy", attributes.get("Policy"), attributes.get("KmsMasterKeyId")


def _function_policy(arn: str) -> tuple[str, Any, str | None] | None:
    function, config, _name = lambda_svc._get_func_record_for_ref(arn)
    if function is None or config is None:
        return None
    return "function policy", function.get("policy"), None


TARGET_CHECKS: dict[str, tuple[str, Callable[[str], tuple[str, Any, str | None] | None]]] = {
    "sns": ("sns:Publish", _topic_policy),
    "sqs": ("sqs:SendMessage", _queue_policy),
    "lambda": ("lambda:InvokeFunction", _function_policy),
}


def rule_targets_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def invoke(target: dict[str, Any], event: dict[str, Any], rule: dict[str, Any], view: Any = None) -> Any:
        checked = target_refusal(str(target.get("Arn", "")), rule)
        if checked is not None and refused(*checked):
            return None
        return original(target, event, rule, view)

    return invoke


# --- SNS -> an encrypted SQS queue -----------------------------------------------------------------


def sqs_subscriptions_check_the_key(original: Callable[..., Any]) -> Callable[..., Any]:
    """SNS needs the queue's key as well as its policy (SNS developer guide, "Subscribing an
    Amazon SQS queue to an Amazon SNS topic",
    docs.aws.amazon.com/sns/latest/dg/subscribe-sqs-queue-to-sns-topic.html)."""

    def deliver(endpoint: str, *args: Any, topic_arn: str = "", **kwargs: Any) -> Any:
        queue = sqs._queue_by_arn(endpoint)
        key_id = (queue or {}).get("attributes", {}).get("KmsMasterKeyId")
        if key_id:
            delivery = ServiceDelivery(
                SNS,
                "sqs:SendMessage",
                endpoint,
                topic_arn,
                _account_of(topic_arn),
                extra_keys={"aws:SourceOwner": _account_of(topic_arn)},
            )
            if refused(delivery, key_refusal(delivery, key_id)):
                return None
        return original(endpoint, *args, topic_arn=topic_arn, **kwargs)

    return deliver


# --- API Gateway -> the Lambda integration and authorizer ----------------------------------------


def function_refusal(
    lambda_ref: str, source_arn: str, account: str, region: str
) -> tuple[ServiceDelivery, str | None] | None:
    function, config, _name = lambda_svc._get_func_record_for_ref_in_scope(
        lambda_ref, account_id=account, region=region
    )
    if function is None or config is None:
        return None  # the engine answers a missing function itself
    delivery = ServiceDelivery(
        API_GATEWAY, "lambda:InvokeFunction", str(config.get("FunctionArn", lambda_ref)), source_arn, account
    )
    return delivery, refusal(delivery, function.get("policy"), "function policy", None)


def integrations_checked(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """The integration is invoked with the route's execute-api ARN as aws:SourceArn
    (arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>), which the permission
    CDK writes matches as <api>/*/*/<path>. An integration with its own credentials role is
    authorized by that role instead (not used by this lab)."""

    async def invoke(
        integration: dict[str, Any],
        api_id: str,
        stage: str,
        path: str,
        method: str,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        account, region = kwargs.get("owner_account_id") or "", kwargs.get("owner_region") or ""
        if not integration.get("credentialsArn") and account:
            lambda_ref = apigateway._extract_lambda_ref_from_integration_uri(
                integration.get("integrationUri", "")
            )
            source = execute_api_arn(region, account, api_id, stage, method, path)
            checked = function_refusal(lambda_ref, source, account, region)
            if checked is not None and refused(*checked):
                return INTERNAL_SERVER_ERROR
        return await original(integration, api_id, stage, path, method, *args, **kwargs)

    return invoke


def authorizers_checked(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A Lambda authorizer is invoked with arn:aws:execute-api:<region>:<account>:<api>/authorizers/<id>
    as aws:SourceArn (the permission CDK's HttpLambdaAuthorizer writes). The engine answers a None
    from here with the 500 AWS gives."""

    async def invoke(authorizer: dict[str, Any], event: dict[str, Any], account_id: str, region: str) -> Any:
        if not authorizer.get("authorizerCredentialsArn"):
            api_id = str((event.get("requestContext") or {}).get("apiId", ""))
            authorizer_id = authorizer.get("authorizerId")
            source = f"arn:aws:execute-api:{region}:{account_id}:{api_id}/authorizers/{authorizer_id}"
            lambda_ref = apigateway._extract_lambda_ref_from_integration_uri(
                authorizer.get("authorizerUri", "")
            )
            checked = function_refusal(lambda_ref, source, account_id, region)
            if checked is not None and refused(*checked):
                return None
        return await original(authorizer, event, account_id, region)

    return invoke


def install() -> None:
    require(cloudwatch, "_dispatch_alarm_actions")
    require(eventbridge, "_invoke_target")
    require(sns, "_deliver_to_sqs", "_topic_by_arn_any_scope")
    require(sqs, "_queue_by_arn")
    require(lambda_svc, "_get_func_record_for_ref", "_get_func_record_for_ref_in_scope")
    require(
        apigateway,
        "_invoke_lambda_proxy",
        "_invoke_request_authorizer_lambda",
        "_extract_lambda_ref_from_integration_uri",
    )
    cloudwatch._dispatch_alarm_actions = alarm_actions_checked(cloudwatch._dispatch_alarm_actions)
    eventbridge._invoke_target = rule_targets_checked(eventbridge._invoke_target)
    sns._deliver_to_sqs = sqs_subscriptions_check_the_key(sns._deliver_to_sqs)
    apigateway._invoke_lambda_proxy = integrations_checked(apigateway._invoke_lambda_proxy)
    apigateway._invoke_request_authorizer_lambda = authorizers_checked(
        apigateway._invoke_request_authorizer_lambda
    )
    LOG.info("installed: service-principal deliveries checked against resource and key policies")


__all__ = ["install"]
