"""Durable tables on a bare Stack: on demand, PITR, TTL, encryption and protection."""

from __future__ import annotations

from aws_cdk import aws_kms as kms

from app.constructs.tables import durable_table
from tests.infra.bare_stack import BareStack


def test_a_protected_table_on_the_stage_key(bare: BareStack) -> None:
    key = kms.Key(bare.stack, "Key")
    table = durable_table(
        bare.stack,
        "T",
        table_name="t-test",
        partition_key="pk",
        ttl_attribute="expiresAt",
        key=key,
        protect=True,
    )
    resource = bare.raw["Resources"][bare.logical_id(table)]
    props = resource["Properties"]
    assert props["TableName"] == "t-test"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert bare.ref(props["SSESpecification"]["KMSMasterKeyId"]) == bare.arn(key)
    assert props["DeletionProtectionEnabled"] is True
    assert resource["DeletionPolicy"] == "Retain"


def test_an_unprotected_table_on_the_aws_managed_key(bare: BareStack) -> None:
    table = durable_table(
        bare.stack, "T", table_name="t", partition_key="pk", ttl_attribute="ttl", key=None, protect=False
    )
    resource = bare.raw["Resources"][bare.logical_id(table)]
    assert resource["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert resource["Properties"].get("DeletionProtectionEnabled", False) is False
    assert resource["DeletionPolicy"] == "Delete"
