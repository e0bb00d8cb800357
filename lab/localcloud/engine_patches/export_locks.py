"""A stack update may not remove or change an export that another stack imports, as on AWS.

What ministack 1.5.33 does: DeleteStack refuses to delete a stack whose export is imported
("Export X is imported by stack Y"), but an UpdateStack / change set that drops or changes such an
export succeeds, and the dropped export even stays listed and importable.
What AWS does: the update fails and rolls back with "Export <name> cannot be deleted as it is in use
by <stack>" (or "cannot be updated" for a changed value): "After another stack imports an output
value, you can't delete the stack that is exporting the output value or modify the exported output
value" (CloudFormation user guide, "Get exported outputs from a deployed CloudFormation stack",
docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-stack-exports.html).
So CDK's cross-stack references lock a producer stack until its consumers stop importing: the lab's
deploys meet the lock here as they would on AWS. A dropped export nobody imports is removed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ministack.services import cloudformation
from ministack.services.cloudformation import handlers, stacks

from .engine_hooks import LOG, require


class ExportInUse(ValueError):
    """The message becomes the stack's failure reason (the engine rolls the update back)."""


def importers(export_name: str, exporting_stack: str) -> list[str]:
    """The other live stacks whose templates import export_name (Fn::ImportValue)."""
    found = []
    for name, stack in cloudformation._stacks.items():
        status = str(stack.get("StackStatus", ""))
        if name == exporting_stack or "DELETE" in status or not status.endswith("_COMPLETE"):
            continue
        if export_name in handlers._imported_export_names(stack, name):
            found.append(name)
    return sorted(found)


def previous_exports(stack_name: str) -> dict[str, str]:
    stack = cloudformation._stacks.get(stack_name) or {}
    return {
        str(out["ExportName"]): str(out.get("OutputValue", ""))
        for out in stack.get("Outputs", [])
        if out.get("ExportName")
    }


def locked_exports(original: Callable[..., Any]) -> Callable[..., Any]:
    def resolve(  # noqa: PLR0917 - the engine's own signature
        outputs_defs: Any,
        conditions: Any,
        resources: Any,
        params: Any,
        mappings: Any,
        stack_name: str,
        stack_id: str,
    ) -> Any:
        outputs, exports = original(
            outputs_defs, conditions, resources, params, mappings, stack_name, stack_id
        )
        before = previous_exports(stack_name)
        for name, value in before.items():
            users = importers(name, stack_name)
            if name not in exports and users:
                message = f"Export {name} cannot be deleted as it is in use by {', '.join(users)}"
            elif name in exports and exports[name]["Value"] != value and users:
                message = f"Export {name} cannot be updated as it is in use by {', '.join(users)}"
            else:
                continue
            LOG.warning("stack %s: %s", stack_name, message)
            raise ExportInUse(message)
        # Nothing after this point fails the operation: drop what the stack no longer exports.
        for name in set(before) - set(exports):
            cloudformation._exports.pop(name, None)
        return outputs, exports

    return resolve


def install() -> None:
    require(stacks, "_resolve_stack_outputs")
    require(handlers, "_imported_export_names")
    if not hasattr(cloudformation, "_stacks") or not hasattr(cloudformation, "_exports"):
        raise SystemExit("engine_patches: ministack's cloudformation has no _stacks/_exports: update the lab")
    stacks._resolve_stack_outputs = locked_exports(stacks._resolve_stack_outputs)
    LOG.info("installed: exports in use lock their stack's updates")
