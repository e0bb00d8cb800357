"""Secure topics on a bare Stack: TLS-only publishers, the stage key when there is one."""

from __future__ import annotations

from aws_cdk import aws_kms as kms

from app.constructs.topics import secure_topic
from tests.infra.bare_stack import BareStack


def test_a_topic_refuses_plain_http_and_uses_the_stage_key(bare: BareStack) -> None:
    key = kms.Key(bare.stack, "Key")
    encrypted = secure_topic(bare.stack, "T", topic_name="t", key=key)
    plain = secure_topic(bare.stack, "P", topic_name="p", key=None)
    assert bare.ref(bare.props(encrypted)["KmsMasterKeyId"]) == bare.arn(key)
    assert "KmsMasterKeyId" not in bare.props(plain)
    denied = {
        topic["Ref"]
        for policy in bare.resources("AWS::SNS::TopicPolicy").values()
        if any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )
        for topic in policy["Properties"]["Topics"]
    }
    assert denied == {bare.logical_id(encrypted), bare.logical_id(plain)}
