"""Checks after a deploy for what the engine lets through and AWS would not: a function deployed
without its code, an SQS event source mapping whose role may not poll its queue. Usable for any
CloudFormation stacks deployed into the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Clients = Callable[[str], Any]
# What Lambda needs from the execution role to poll an SQS queue (AWS refuses to create or run
# the mapping without them).
SQS_MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


class ConformanceError(RuntimeError):
    """A deployed stack would not run on AWS as it runs on the engine."""


def stack_resources(cfn: Any, stack: str, resource_type: str) -> list[str]:
    """Physical ids of one stack's resources of one type."""
    paginator = cfn.get_paginator("list_stack_resources")
    return [
        summary["PhysicalResourceId"]
        for page in paginator.paginate(StackName=stack)
        for summary in page["StackResourceSummaries"]
        if summary["ResourceType"] == resource_type
    ]


def check_function_code(clients: Clients, stacks: list[str]) -> list[str]:
    """Every deployed function must carry its code: the engine answers a function whose asset is
    missing with a canned "Mock response" instead of failing."""
    cfn = clients("cloudformation")
    lam = clients("lambda")
    functions = [fn for stack in stacks for fn in stack_resources(cfn, stack, "AWS::Lambda::Function")]
    empty = [
        fn for fn in functions if lam.get_function(FunctionName=fn)["Configuration"].get("CodeSize", 0) <= 0
    ]
    if not functions:
        raise ConformanceError("the deployed stacks have no Lambda function")
    if empty:
        raise ConformanceError(
            f"deployed functions without code (CodeSize 0, asset missing): {', '.join(empty)}"
        )
    return functions


def check_queue_mapping_permissions(clients: Clients, stacks: list[str]) -> list[str]:
    """The engine polls SQS for a mapping whatever the function's role allows; AWS does not. So
    ask the engine's IAM simulator, with the role's own policies, what AWS would decide.

    The three actions are the execution-role permissions the Lambda Developer Guide lists for an
    SQS event source (docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
    """
    cfn = clients("cloudformation")
    lam = clients("lambda")
    iam = clients("iam")
    checked = []
    for stack in stacks:
        for mapping_id in stack_resources(cfn, stack, "AWS::Lambda::EventSourceMapping"):
            mapping = lam.get_event_source_mapping(UUID=mapping_id)
            source = mapping.get("EventSourceArn", "")
            if not source.startswith("arn:aws:sqs:"):
                continue
            role_arn = lam.get_function_configuration(FunctionName=mapping["FunctionArn"])["Role"]
            results = iam.simulate_principal_policy(
                PolicySourceArn=role_arn, ActionNames=list(SQS_MAPPING_ACTIONS), ResourceArns=[source]
            )["EvaluationResults"]
            denied = [r["EvalActionName"] for r in results if r["EvalDecision"] != "allowed"]
            if denied:
                raise ConformanceError(
                    f"the SQS mapping of {mapping['FunctionArn']} cannot poll {source}: its role "
                    f"{role_arn} lacks {', '.join(denied)} (AWS would not run this mapping)"
                )
            checked.append(mapping_id)
    return checked
