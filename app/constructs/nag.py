"""cdk-nag 3.x acknowledgments in one shape: always one finding, always with a reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def suppress(construct: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (e.g. "AwsSolutions-IAM5[Resource::*]") on a construct subtree."""
    Validations.of(construct).acknowledge(Acknowledgment(id=finding, reason=reason))
