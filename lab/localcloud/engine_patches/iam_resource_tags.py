"""`iam:ResourceTag/<key>` for requests on an IAM role or user: the tags of that role or user.

AWS evaluates iam:ResourceTag against the tags attached to the role or user a request acts on,
sts:AssumeRole included (IAM User Guide, "Controlling access to and for IAM users and roles using
tags"). ministack resolves aws:ResourceTag but not iam:ResourceTag, so a policy conditioned on it
never matches: CDK Pipelines' self-mutation role may assume the bootstrap roles only through
`iam:ResourceTag/aws-cdk:bootstrap-role`, and was refused on the engine while AWS allows it.
"""

from __future__ import annotations

from typing import Any

from ministack.core import iam_evaluator
from ministack.services import tagging

from .engine_hooks import require

IAM_ENTITY_TYPES = (":role/", ":user/")


def _with_iam_resource_tags(original: Any) -> Any:
    # The engine's parameters, in order (resource_arn and service_context are optional).
    names = ("access_key_id", "iam_action", "service", "region", "resource_arn", "service_context")

    def enforce(*args: Any, **kwargs: Any) -> Any:
        call = {**dict(zip(names, args, strict=False)), **kwargs}
        resource_arn = str(call.get("resource_arn", "*"))
        if ":iam::" in resource_arn and any(kind in resource_arn for kind in IAM_ENTITY_TYPES):
            context = dict(call.get("service_context") or {})
            for key, value in (tagging.resource_tags(resource_arn) or {}).items():
                context.setdefault(f"iam:ResourceTag/{key}", value)
            call["service_context"] = context
        return original(**call)

    return enforce


def install() -> None:
    require(iam_evaluator, "enforce")
    require(tagging, "resource_tags")
    iam_evaluator.enforce = _with_iam_resource_tags(iam_evaluator.enforce)
