"""Engine conformance for the pipeline rehearsal (lab/localcloud/engine_patches): CloudFormation
creates, updates and refuses AWS::CodePipeline::Pipeline resources as CodePipeline does, a policy
conditioned on iam:ResourceTag sees the role's tags, and accounts stay apart."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lab.localcloud.engine import EngineClients
from lab.localcloud.engine_patches.pipeline_store import read_pipeline

ACCOUNT = "444444444444"
OTHER_ACCOUNT = "555555555555"


def pipeline_template(
    source_output: str, build_input: str, comment: str = "v1", name: str = "conformance"
) -> dict[str, Any]:
    role = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{ACCOUNT}:role/pipeline"]]}
    return {
        "Resources": {
            "Pipeline": {
                "Type": "AWS::CodePipeline::Pipeline",
                "Properties": {
                    "Name": name,
                    "RoleArn": role,
                    "PipelineType": "V2",
                    "RestartExecutionOnUpdate": True,
                    "ArtifactStore": {"Type": "S3", "Location": "bucket"},
                    "Stages": [
                        {
                            "Name": "Source",
                            "Actions": [
                                {
                                    "Name": "Src",
                                    "ActionTypeId": {
                                        "Category": "Source",
                                        "Owner": "AWS",
                                        "Provider": "S3",
                                        "Version": "1",
                                    },
                                    "OutputArtifacts": [{"Name": source_output}],
                                }
                            ],
                        },
                        {
                            "Name": "Approve",
                            "Actions": [
                                {
                                    "Name": "Ok",
                                    "ActionTypeId": {
                                        "Category": "Approval",
                                        "Owner": "AWS",
                                        "Provider": "Manual",
                                        "Version": "1",
                                    },
                                    "InputArtifacts": [{"Name": build_input}],
                                    "Configuration": {"CustomData": comment},
                                }
                            ],
                        },
                    ],
                },
            }
        }
    }


def wait_stack(cfn: Any, name: str) -> dict[str, Any]:
    for _ in range(120):
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return dict(stack)
        time.sleep(0.5)
    raise AssertionError(f"{name} is still in progress")


def test_cloudformation_stores_a_pipeline_updates_its_version_and_refuses_a_broken_one(
    local_engine, name
) -> None:
    cfn = EngineClients(local_engine.info, ACCOUNT)("cloudformation")
    stack = name("pipeline-stack")
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(pipeline_template("Code", "Code")))
    assert wait_stack(cfn, stack)["StackStatus"] == "CREATE_COMPLETE"
    stored = read_pipeline(local_engine.state.codepipeline_dir, ACCOUNT, "us-east-1", "conformance")
    assert stored is not None
    assert stored.version == 1
    # Stored as CloudFormation resolved it: no intrinsic function left.
    assert stored.declaration["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/pipeline"

    cfn.update_stack(
        StackName=stack, TemplateBody=json.dumps(pipeline_template("Code", "Code", comment="v2"))
    )
    assert wait_stack(cfn, stack)["StackStatus"] == "UPDATE_COMPLETE"
    updated = read_pipeline(local_engine.state.codepipeline_dir, ACCOUNT, "us-east-1", "conformance")
    assert updated is not None
    assert updated.version == 2
    # Each account has its own pipelines.
    assert (
        read_pipeline(local_engine.state.codepipeline_dir, OTHER_ACCOUNT, "us-east-1", "conformance") is None
    )

    broken = name("broken-pipeline")
    cfn.create_stack(
        StackName=broken, TemplateBody=json.dumps(pipeline_template("Code", "Elsewhere", name="broken"))
    )
    failed = wait_stack(cfn, broken)
    assert failed["StackStatus"] in ("ROLLBACK_COMPLETE", "CREATE_FAILED", "ROLLBACK_FAILED")
    events = cfn.describe_stack_events(StackName=broken)["StackEvents"]
    reasons = " ".join(str(e.get("ResourceStatusReason", "")) for e in events)
    assert "is not the output of an earlier action" in reasons


def session(local_engine: Any, credentials: dict[str, str]) -> Any:
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    )


def test_iam_resource_tag_conditions_see_the_role_tags(local_engine, name) -> None:
    """CDK Pipelines' self-mutation role may assume only roles tagged aws-cdk:bootstrap-role."""
    iam = EngineClients(local_engine.info, ACCOUNT)("iam")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
        }
    )
    tagged, untagged, caller = name("tagged"), name("untagged"), name("caller")
    iam.create_role(
        RoleName=tagged,
        AssumeRolePolicyDocument=trust,
        Tags=[{"Key": "aws-cdk:bootstrap-role", "Value": "deploy"}],
    )
    iam.create_role(RoleName=untagged, AssumeRolePolicyDocument=trust)
    iam.create_role(RoleName=caller, AssumeRolePolicyDocument=trust)
    iam.put_role_policy(
        RoleName=caller,
        PolicyName="assume-bootstrap-roles",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": f"arn:*:iam::{ACCOUNT}:role/*",
                        "Condition": {
                            "ForAnyValue:StringEquals": {"iam:ResourceTag/aws-cdk:bootstrap-role": ["deploy"]}
                        },
                    }
                ],
            }
        ),
    )
    root_sts = EngineClients(local_engine.info, ACCOUNT)("sts")
    credentials = root_sts.assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{caller}", RoleSessionName="caller"
    )["Credentials"]
    sts = session(local_engine, credentials).client("sts", endpoint_url=local_engine.endpoint_url)

    assumed = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{tagged}", RoleSessionName="ok")
    assert assumed["AssumedRoleUser"]["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/{tagged}/")
    with pytest.raises(ClientError, match="AccessDenied"):
        sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{untagged}", RoleSessionName="no")


def test_ref_of_a_secret_is_its_arn_so_a_grant_on_it_matches(local_engine, name) -> None:
    """CloudFormation returns a secret's ARN for Ref (Template Reference, AWS::SecretsManager::Secret);
    a role granted GetSecretValue on that Ref reads the secret by name or ARN."""
    clients = EngineClients(local_engine.info, ACCOUNT)
    cfn, iam = clients("cloudformation"), clients("iam")
    stack, secret_name, role = name("secret-stack"), name("api-key"), name("reader")
    template = {
        "Resources": {
            "Secret": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {"Name": secret_name, "SecretString": "s3cret"},
            },
        },
        "Outputs": {"Ref": {"Value": {"Ref": "Secret"}}},
    }
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    assert wait_stack(cfn, stack)["StackStatus"] == "CREATE_COMPLETE"
    (output,) = cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
    arn = output["OutputValue"]
    assert arn.startswith(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{secret_name}-")

    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    grant = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arn}],
    }
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=json.dumps(grant))
    credentials = clients("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="reader"
    )["Credentials"]
    reader = session(local_engine, credentials).client(
        "secretsmanager", endpoint_url=local_engine.endpoint_url
    )
    assert reader.get_secret_value(SecretId=secret_name)["SecretString"] == "s3cret"

    cfn.delete_stack(StackName=stack)
    for _ in range(60):
        if not [
            s for s in clients("secretsmanager").list_secrets()["SecretList"] if s["Name"] == secret_name
        ]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("deleting the stack left the secret behind")
