"""The stage key on a bare Stack: rotation, alias, waiting period, and the services that may use it."""

from __future__ import annotations

from app.constructs.kms_key import stage_key
from tests.infra.bare_stack import ACCOUNT, BareStack


def test_the_stage_key_rotates_and_lets_only_this_accounts_services_encrypt(bare: BareStack) -> None:
    key = stage_key(
        bare.stack, "Key", alias="alias/ingestion-test", stage_prefix="ingestion-test", protect=True
    )
    resource = bare.raw["Resources"][bare.logical_id(key)]
    assert resource["Properties"]["EnableKeyRotation"] is True
    assert resource["Properties"]["PendingWindowInDays"] == 30
    assert resource["DeletionPolicy"] == "Retain"
    bare.template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/ingestion-test"})
    (services,) = [
        s
        for s in resource["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Sid") == "AllowAwsServicesToWriteEncryptedMessages"
    ]
    assert sorted(services["Principal"]["Service"]) == [
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
        "sns.amazonaws.com",
    ]
    assert services["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_an_unprotected_key_waits_seven_days_and_goes_with_its_stack(bare: BareStack) -> None:
    key = stage_key(bare.stack, "Key", alias="alias/x", stage_prefix="x", protect=False)
    resource = bare.raw["Resources"][bare.logical_id(key)]
    assert resource["Properties"]["PendingWindowInDays"] == 7
    assert resource["DeletionPolicy"] == "Delete"
