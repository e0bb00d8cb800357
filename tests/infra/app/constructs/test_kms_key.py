"""The stage key on a bare Stack: rotation, alias, waiting period, and a policy that grants no service."""

from __future__ import annotations

from app.constructs.kms_key import stage_key
from tests.infra.bare_stack import ACCOUNT, BareStack


def test_the_stage_key_rotates_and_grants_no_service_by_itself(bare: BareStack) -> None:
    """Each delivery into an encrypted resource adds its own statement, next to the component that
    makes it (tests/infra/app/test_deliveries.py): the key alone lets only the account decide."""
    key = stage_key(
        bare.stack, "Key", alias="alias/ingestion-test", stage_prefix="ingestion-test", protect=True
    )
    resource = bare.raw["Resources"][bare.logical_id(key)]
    assert resource["Properties"]["EnableKeyRotation"] is True
    assert resource["Properties"]["PendingWindowInDays"] == 30
    assert resource["DeletionPolicy"] == "Retain"
    bare.template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/ingestion-test"})
    (statement,) = resource["Properties"]["KeyPolicy"]["Statement"]
    assert statement["Principal"] == {
        "AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{ACCOUNT}:root"]]}
    }


def test_an_unprotected_key_waits_seven_days_and_goes_with_its_stack(bare: BareStack) -> None:
    key = stage_key(bare.stack, "Key", alias="alias/x", stage_prefix="x", protect=False)
    resource = bare.raw["Resources"][bare.logical_id(key)]
    assert resource["Properties"]["PendingWindowInDays"] == 7
    assert resource["DeletionPolicy"] == "Delete"
