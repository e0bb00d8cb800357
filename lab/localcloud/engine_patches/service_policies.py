"""Would AWS let a service principal (events.amazonaws.com, cloudwatch.amazonaws.com...) deliver to
a resource? Decided by the engine's own IAM evaluator over the target's resource policy and, for a
KMS-encrypted target, its key policy: the same evaluator and documents a direct API call meets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ministack.core import iam_evaluator
from ministack.core.responses import request_scope
from ministack.services import kms

# The actions a service needs on the key of an encrypted topic or queue it delivers to: the data
# key to encrypt the message, and Decrypt to reuse it (SNS developer guide, "Enable compatibility
# between event sources from AWS services and encrypted topics",
# docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services; SQS
# developer guide,
# docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html).
KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
# AWS managed keys (alias/aws/sns, alias/aws/sqs) have a key policy nobody can change, which lets
# only principals of the account use them through the service: no service principal can deliver
# to a topic or queue encrypted with one (same documents).
AWS_MANAGED_ALIAS = "alias/aws/"


@dataclass(frozen=True)
class ServiceDelivery:
    """One delivery a service makes on a resource's behalf, with the condition keys it carries."""

    principal: str
    action: str
    target_arn: str
    source_arn: str
    source_account: str
    # Condition keys the service sends, beyond aws:SourceArn / aws:SourceAccount (CloudWatch and
    # SNS also send AWS:SourceOwner, which SNS's default topic policy conditions on).
    extra_keys: dict[str, str] = field(default_factory=dict)
    # Whether the request to the target (resource policy) and to its key carries aws:SourceArn /
    # aws:SourceAccount. EventBridge's publish to SNS and its KMS requests carry none (EventBridge
    # user guide, "Using resource-based policies for Amazon EventBridge", Amazon SNS permissions:
    # condition blocks are not supported in SNS topic policies for EventBridge): a statement
    # conditioned on them fails closed, as on AWS.
    policy_request_has_source: bool = True
    key_request_has_source: bool = True

    def describe(self) -> str:
        return f"{self.principal} {self.action} on {self.target_arn} (source {self.source_arn})"

    def context(self, action: str, resource_arn: str, *, with_source: bool = True) -> Any:
        keys = {"aws:sourcearn": self.source_arn, "aws:sourceaccount": self.source_account}
        keys.update({name.lower(): value for name, value in self.extra_keys.items()})
        return iam_evaluator.EvalContext(
            # The caller is the service itself: an account or role grant must not match it, while
            # Principal "*" does (the engine's own queue_policy_allows decides the same way).
            principal_arn="*",
            principal_type="Service",
            principal_account="",
            action=action,
            resource_arn=resource_arn,
            region=_region_of(resource_arn),
            # Services call each other over TLS: a TLS-only Deny never refuses them.
            secure_transport=True,
            service_context=keys if with_source else {},
        )


def enforced() -> bool:
    """Only with IAM enforcement on (AUTH=true), like the engine's own policy checks."""
    from ministack.app import AUTH  # noqa: PLC0415 - read at call time: set by the engine's main

    return bool(AUTH)


def refusal(delivery: ServiceDelivery, resource_policy: Any, kind: str, key_id: str | None) -> str | None:
    """Why AWS would refuse the delivery (resource policy first, then the key policy), or None."""
    if not enforced():
        return None
    reason = _policy_refusal(
        delivery,
        resource_policy,
        kind,
        delivery.action,
        delivery.target_arn,
        with_source=delivery.policy_request_has_source,
    )
    if reason is None and key_id:
        reason = key_refusal(delivery, key_id)
    return reason


def key_refusal(delivery: ServiceDelivery, key_id: str) -> str | None:
    if not enforced():
        return None
    if AWS_MANAGED_ALIAS in key_id:
        return (
            f"the target is encrypted with the AWS managed key {key_id}, whose key policy lets no service "
            f"principal use it (use a customer managed key)"
        )
    account, region = delivery.target_arn.split(":")[4], _region_of(delivery.target_arn)
    with request_scope(account, region):
        key = kms._resolve_key(key_id)
    if key is None:
        return f"its KMS key {key_id} does not exist"
    for action in KEY_ACTIONS:
        reason = _policy_refusal(
            delivery,
            key.get("Policy"),
            f"key policy of {key.get('Arn', key_id)}",
            action,
            str(key.get("Arn", key_id)),
            with_source=delivery.key_request_has_source,
        )
        if reason:
            return reason
    return None


def _policy_refusal(
    delivery: ServiceDelivery,
    policy: Any,
    kind: str,
    action: str,
    resource_arn: str,
    *,
    with_source: bool = True,
) -> str | None:
    if not policy:
        return f"the {kind} is missing: nothing allows {delivery.principal} to {action}"
    context = delivery.context(action, resource_arn, with_source=with_source)
    decision = iam_evaluator.evaluate_resource_policy(policy, context, service=delivery.principal)
    if decision.decision == "Allow":
        return None
    if decision.decision == "Deny":
        return f"statement {decision.matched_sid or '(no Sid)'} of the {kind} denies {action}"
    return f"no statement of the {kind} allows {delivery.principal} to {action} (with its source conditions)"


def _region_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else "us-east-1"
