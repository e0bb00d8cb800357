"""Engine conformance: an export another stack imports locks the exporting stack's updates, as on AWS
(lab/localcloud/engine_patches/export_locks.py): removing or changing it fails the update with
CloudFormation's message and rolls it back; an export nobody imports goes when its stack drops it.

CloudFormation user guide, "Get exported outputs from a deployed CloudFormation stack"
(using-cfn-stack-exports.html): "After another stack imports an output value, you can't delete the
stack that is exporting the output value or modify the exported output value."
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

Template = dict[str, Any]


def producer(exports: dict[str, str]) -> Template:
    """A stack with one SSM parameter per export (export name -> its value), and one more: a
    template needs a resource even when it exports nothing."""
    resources = {
        f"P{i}": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": value}}
        for i, value in enumerate([*exports.values(), "kept"])
    }
    outputs = {
        f"O{i}": {"Value": {"Fn::GetAtt": [f"P{i}", "Value"]}, "Export": {"Name": export}}
        for i, export in enumerate(exports)
    }
    return {"Resources": resources, "Outputs": outputs}


def consumer(imports: list[str]) -> Template:
    """A stack whose parameters hold imported values (none imported: a placeholder parameter)."""
    values: list[Any] = [{"Fn::ImportValue": name} for name in imports] or ["nothing imported"]
    return {
        "Resources": {
            f"C{i}": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": value}}
            for i, value in enumerate(values)
        }
    }


def settle(cfn: Any, stack: str) -> str:
    """The stack's status once no operation is in progress."""
    deadline = time.monotonic() + 60
    while True:
        status = str(cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"])
        if not status.endswith("_IN_PROGRESS"):
            return status
        assert time.monotonic() < deadline, f"{stack} still {status}"
        time.sleep(0.5)


def deploy(cfn: Any, stack: str, template: Template, *, update: bool = False) -> str:
    call = cfn.update_stack if update else cfn.create_stack
    call(StackName=stack, TemplateBody=json.dumps(template))
    return settle(cfn, stack)


def failure_reasons(cfn: Any, stack: str) -> list[str]:
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    return [
        str(e["ResourceStatusReason"])
        for e in events
        if "FAILED" in e["ResourceStatus"] and e.get("ResourceStatusReason")
    ]


def exports(cfn: Any) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in cfn.list_exports()["Exports"]}


def test_an_imported_export_cannot_be_removed_or_changed(local_engine, name: Callable[[str], str]) -> None:
    cfn = local_engine.client("cloudformation")
    used, unused = name("Used"), name("Unused")
    source, sink = name("producer"), name("consumer")
    assert deploy(cfn, source, producer({used: "v1", unused: "spare"})) == "CREATE_COMPLETE"
    assert deploy(cfn, sink, consumer([used])) == "CREATE_COMPLETE"

    removed = deploy(cfn, source, producer({unused: "spare"}), update=True)
    assert removed == "UPDATE_ROLLBACK_COMPLETE"
    assert f"Export {used} cannot be deleted as it is in use by {sink}" in failure_reasons(cfn, source)
    assert exports(cfn)[used] == "v1"

    changed = deploy(cfn, source, producer({used: "v2", unused: "spare"}), update=True)
    assert changed == "UPDATE_ROLLBACK_COMPLETE"
    assert f"Export {used} cannot be updated as it is in use by {sink}" in failure_reasons(cfn, source)
    assert exports(cfn)[used] == "v1"


def test_an_export_goes_once_nobody_imports_it(local_engine, name: Callable[[str], str]) -> None:
    """The order CDK must follow (consumer first) succeeds, and the dropped export is gone (the
    engine used to keep listing it, so a later import of it would have succeeded locally only)."""
    cfn = local_engine.client("cloudformation")
    used, unused = name("Used"), name("Unused")
    source, sink = name("producer"), name("consumer")
    deploy(cfn, source, producer({used: "v1", unused: "spare"}))
    deploy(cfn, sink, consumer([used]))

    assert deploy(cfn, source, producer({used: "v1"}), update=True) == "UPDATE_COMPLETE"
    assert unused not in exports(cfn)

    assert deploy(cfn, sink, consumer([]), update=True) == "UPDATE_COMPLETE"
    assert deploy(cfn, source, producer({}), update=True) == "UPDATE_COMPLETE"
    assert used not in exports(cfn)
