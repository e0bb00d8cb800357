"""No configuration toggle locks a deployed stage through its cross-stack exports.

CloudFormation deploys the producing stack first and refuses to delete or change an export another
stack still imports ("Export ... cannot be deleted as it is in use by ..."; AWS CloudFormation User
Guide, "Get exported outputs from a deployed CloudFormation stack": you can't delete a stack's
export while another stack references it, nor modify its value). So when a toggle removes the only
consumers of an export (the authorizer with authMode apiKey -> jwt, the FIS templates with
fisEnabled true -> false...), flipping it on a deployed stage fails. Optional consumers name what
they use by its deterministic name instead; these tests flip each toggle both ways on synthesized
stages and require the exports to stay exactly the same. The local tier deploys the flips
(lab/harness, T5b).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack

from app.config import ALLOW_EXAMPLE_JWT_ISSUER, load_stage_config
from app.main import stage_context
from app.stage import IngestionStage
from tests.infra.synth import ALARM_EMAIL, PIPELINE_ACCOUNT, WEBHOOK_URL

ISSUER = {"jwtIssuer": "https://login.example.org/oauth2/ingestion", "jwtAudience": ["ingestion-api"]}
# What a deployed dev or prod stage may have on, beside its cdk.json values.
DEPLOYED = {"pipelineAccount": PIPELINE_ACCOUNT, "alarmEmail": ALARM_EMAIL, "webhookUrl": WEBHOOK_URL}


@dataclass(frozen=True)
class Toggle:
    """A configuration change that adds or removes resources, flipped from `before` to `after`."""

    name: str
    env_name: str
    before: dict[str, Any]
    after: dict[str, Any]


TOGGLES = [
    Toggle("authMode apiKey -> jwt", "dev", {}, {"authMode": "jwt", **ISSUER}),
    Toggle("authMode apiKey -> none", "dev", {}, {"authMode": "none"}),
    Toggle("fisEnabled true -> false", "dev", {}, {"fisEnabled": False}),
    Toggle(
        "failure injection (and FIS) off", "dev", {}, {"fisEnabled": False, "failureInjectionEnabled": False}
    ),
    Toggle("pipelineAccount set -> unset", "dev", {}, {"pipelineAccount": None}),
    Toggle("queryDefinitionsEnabled true -> false", "dev", {}, {"queryDefinitionsEnabled": False}),
    Toggle("alarm subscribers -> none", "dev", {}, {"alarmEmail": None, "webhookUrl": None}),
    # The stage key's export (useKmsCmk) is consumed by every function: prod flips with the key on.
    Toggle(
        "prod authMode jwt -> apiKey",
        "prod",
        ISSUER,
        {"authMode": "apiKey", "jwtIssuer": None, "jwtAudience": []},
    ),
    Toggle("prod pipelineAccount set -> unset", "prod", ISSUER, {**ISSUER, "pipelineAccount": None}),
]
# useKmsCmk is not a toggle: the key encrypts the deployed queues, topics and tables, and every
# function's role names it, so turning it off is a data migration, not a redeploy.


@dataclass
class Synthesized:
    """Exports (name -> value) and, per export, the resources importing it ("stack/logicalId")."""

    exports: dict[str, Any]
    consumers: dict[str, set[str]]
    resources: set[str]


def read(stage: IngestionStage) -> Synthesized:
    exports: dict[str, Any] = {}
    consumers: dict[str, set[str]] = {}
    resources: set[str] = set()
    for stack in (stage.state, stage.compute, stage.api, stage.observability):
        template = json.loads((Path(stage.outdir) / Stack.of(stack).template_file).read_text())
        for output in template.get("Outputs", {}).values():
            if "Export" in output:
                exports[output["Export"]["Name"]] = output["Value"]
        for logical_id, resource in template["Resources"].items():
            where = f"{stack.stack_name}/{logical_id}"
            resources.add(where)
            for name in imported(resource):
                consumers.setdefault(name, set()).add(where)
    return Synthesized(exports, consumers, resources)


def imported(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if "Fn::ImportValue" in value:
            yield value["Fn::ImportValue"]
        for item in value.values():
            yield from imported(item)
    elif isinstance(value, list):
        for item in value:
            yield from imported(item)


@pytest.fixture(scope="module")
def flipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Synthesized, Synthesized]]:
    """Every toggle's two sides, synthesized in one app (the stacks keep their names per envName)."""
    app = App(outdir=str(tmp_path_factory.mktemp("exports")), context={ALLOW_EXAMPLE_JWT_ISSUER: True})
    context = stage_context(app)
    built: dict[str, tuple[IngestionStage, IngestionStage]] = {}
    for index, toggle in enumerate(TOGGLES):
        sides = []
        for side, changes in (("Before", toggle.before), ("After", toggle.after)):
            # None switches off a key (one cdk.json or DEPLOYED sets).
            config = load_stage_config(context, toggle.env_name, **{**DEPLOYED, **changes})
            sides.append(IngestionStage(app, f"Toggle{index}{side}", config=config))
        built[toggle.name] = (sides[0], sides[1])
    app.synth()
    return {name: (read(before), read(after)) for name, (before, after) in built.items()}


@pytest.mark.parametrize("toggle", TOGGLES, ids=[t.name for t in TOGGLES])
def test_flipping_a_toggle_either_way_keeps_every_export(
    toggle: Toggle, flipped: dict[str, tuple[Synthesized, Synthesized]]
) -> None:
    before, after = flipped[toggle.name]
    for old, new in ((before, after), (after, before)):
        # Exports whose every importer goes away with the flip: the lock the issue describes.
        removed = old.resources - new.resources
        only_optional = {
            name: sorted(users) for name, users in old.consumers.items() if users and users <= removed
        }
        assert only_optional == {}, f"exports consumed only by resources the flip removes: {only_optional}"
        # And none may disappear or change value while the other side still imports it.
        changed = {
            name: sorted(old.consumers.get(name, ()))
            for name, value in old.exports.items()
            if new.exports.get(name) != value
        }
        assert changed == {}, f"exports removed or changed by the flip (and who imports them): {changed}"
    assert before.exports, "no exports at all: the test would prove nothing"


def test_the_toggles_do_remove_resources(flipped: dict[str, tuple[Synthesized, Synthesized]]) -> None:
    """Each toggle changes the stage's resources (else the flip above tests nothing)."""
    for name, (before, after) in flipped.items():
        assert before.resources != after.resources, name
