"""The delivery pipeline rehearsed on the local cloud, as synthesized, across three accounts
(issue 13). The tests run in this order on one engine (each builds on the accounts the one before
left):

1. a push to another branch is ignored, and says so;
2. a failing dev check stops the run before the approval (the smoke broken on a scratch branch);
3. a rejected approval leaves prod untouched (nothing is deployed to prod before an approval);
4. a missing bootstrap fails the run with an error naming the command to run;
5. the full rehearsal: a push of the committed pipeline updates the light one (self-mutation: the
   run restarts on the new definition), then synth with the developer check, assets, dev deploy,
   smoke, load test and gameday, approval, prod deploy and prod smoke; each stack in its account.
"""

from __future__ import annotations

import time

from lab.localcloud.codepipeline.execution import ExecutionRecord
from lab.localcloud.engine import EngineClients
from tests.local.pipeline.conftest import Rehearsal

STAGE_KINDS = ("state", "functions", "api", "observability")
# Minutes each wait may take on 2 shared cores (a run's worst case is far longer on AWS).
DEV_RUN_S = 12 * 60
FULL_RUN_S = 25 * 60


def statuses(record: ExecutionRecord, stage: str) -> dict[str, str]:
    return {a.name: a.status for a in record.actions if a.stage == stage}


def test_a_push_to_another_branch_is_ignored(rehearsal: Rehearsal) -> None:
    before = len(rehearsal.rdir.home.executions())
    output = rehearsal.push(branch="feature/not-watched")
    assert "refs/heads/feature/not-watched ignored (the pipeline watches refs/heads/main)" in output
    time.sleep(2)
    assert len(rehearsal.rdir.home.executions()) == before


def test_a_failing_dev_check_stops_the_run_before_the_approval(rehearsal: Rehearsal) -> None:
    commit = rehearsal.commit(
        "test: the smoke test expects a status the API never answers",
        {
            "pipeline/scripts/smoke.sh": lambda s: s.replace(
                "expect 202 POST /events", "expect 299 POST /events"
            )
        },
        branch="scratch/broken-smoke",
    )
    output = rehearsal.push()
    assert "started for" in output
    record = rehearsal.finished(rehearsal.execution_of(commit).id, timeout=DEV_RUN_S)

    assert record.status == "Failed"
    smoke = record.action("Dev", "Smoke")
    assert smoke.status == "Failed"
    assert (
        "smoke: FAILED POST /events -> 202 (expected 299)"
        in (rehearsal.rdir.root / str(smoke.log)).read_text()
    )
    # Nothing after the failed check ran: not the other checks, not the approval, not prod.
    assert statuses(record, "Dev")["LoadTest"] != "Succeeded"
    assert set(statuses(record, "Prod").values()) == {"NotStarted"}
    assert record.stage("Prod").status == "NotStarted"


def test_a_rejected_approval_leaves_prod_untouched(rehearsal: Rehearsal) -> None:
    rehearsal.checkout(rehearsal.base_branch)
    commit = rehearsal.commit("test: a change to approve or reject", {"README.md": lambda s: s + "\n"})
    rehearsal.push()
    execution = rehearsal.execution_of(commit).id
    waiting = rehearsal.waiting_for_approval(execution, timeout=DEV_RUN_S)

    assert set(statuses(waiting, "Dev").values()) == {"Succeeded"}
    accounts = rehearsal.setup.accounts
    dev_stacks = rehearsal.stacks(accounts.dev)
    assert {f"ingestion-dev-{kind}" for kind in STAGE_KINDS} <= set(dev_stacks)
    # Before an approval, nothing of the stage exists in prod, nor in the other accounts.
    assert not [name for name in rehearsal.stacks(accounts.prod) if name.startswith("ingestion-")]
    assert not [name for name in rehearsal.stacks(accounts.pipeline) if name.startswith("ingestion-dev")]

    assert rehearsal.lab("reject", "--summary", "not this one") == 0
    record = rehearsal.finished(execution, timeout=120)

    assert record.status == "Failed"
    assert record.action("Prod", "PromoteToProd").status == "Failed"
    assert "Rejected" in record.action("Prod", "PromoteToProd").summary
    assert not [name for name in rehearsal.stacks(accounts.prod) if name.startswith("ingestion-")]
    assert set(statuses(record, "Prod").values()) - {"Failed"} == {"Didn't run"}


def test_a_missing_bootstrap_names_the_command_to_run(rehearsal: Rehearsal) -> None:
    dev = rehearsal.setup.accounts.dev
    cfn = EngineClients(rehearsal.engine.info, dev)("cloudformation")
    cfn.delete_stack(StackName="CDKToolkit")
    for _ in range(60):
        if "CDKToolkit" not in rehearsal.stacks(dev):
            break
        time.sleep(1)
    commit = rehearsal.commit(
        "test: a change while dev lost its bootstrap", {"README.md": lambda s: s + "\n"}
    )
    rehearsal.push()
    record = rehearsal.finished(rehearsal.execution_of(commit).id, timeout=DEV_RUN_S)
    try:
        assert record.status == "Failed"
        failed = [a for a in record.actions if a.status == "Failed"]
        assert [(a.stage, a.name) for a in failed] == [("Assets", "FileAssets")]
        error = failed[0].error
        assert f"account {dev} is not bootstrapped for this pipeline: run `lab pipeline init`" in error
        assert f"cdk bootstrap aws://{dev}/us-east-1 --trust {rehearsal.setup.accounts.pipeline}" in error
    finally:
        # As the error says: the deleted stack retained its staging bucket (as on AWS, where a new
        # bootstrap fails on the bucket's name), so empty and delete it, then `lab pipeline init`.
        s3 = EngineClients(rehearsal.engine.info, dev)("s3")
        bucket = f"cdk-hnb659fds-assets-{dev}-us-east-1"
        # The bootstrap bucket is versioned: every version and delete marker goes.
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        s3.delete_bucket(Bucket=bucket)
        assert rehearsal.lab("init") == 0
    assert "CDKToolkit" in rehearsal.stacks(dev)


def test_the_full_rehearsal_restarts_on_the_committed_pipeline_and_reaches_prod(rehearsal: Rehearsal) -> None:
    started = time.monotonic()
    rehearsal.push(ref=rehearsal.original_head)
    first = rehearsal.execution_of(rehearsal.original_head)
    first = rehearsal.finished(first.id, timeout=DEV_RUN_S)

    # The light pipeline synthesized the committed one and deployed it: CodePipeline restarts.
    assert first.status == "Superseded"
    assert "the pipeline was updated to version" in first.status_reason
    events, _ = rehearsal.rdir.home.read_events(first.id)
    (restarted_id,) = [e["next"] for e in events if e.get("next")]
    waiting = rehearsal.waiting_for_approval(restarted_id, timeout=FULL_RUN_S)
    assert waiting.trigger["kind"] == "PipelineUpdated"
    assert waiting.pipeline_version > first.pipeline_version
    synth_log = (rehearsal.rdir.root / str(waiting.action("Build", "Synth").log)).read_text()
    assert "make lint typecheck test-unit test-infra" in synth_log
    accounts = rehearsal.setup.accounts
    assert not [name for name in rehearsal.stacks(accounts.prod) if name.startswith("ingestion-")]

    assert rehearsal.lab("approve", "--summary", "rehearsal test") == 0
    record = rehearsal.finished(restarted_id, timeout=15 * 60)
    wall = time.monotonic() - started
    print(f"\nfull rehearsal: {record.seconds:.0f} s for {record.id} ({wall:.0f} s with the restart)")

    assert record.status == "Succeeded", record.status_reason
    # Each stage's stacks landed in its own account, and only there.
    prod_stacks = set(rehearsal.stacks(accounts.prod))
    dev_stacks = set(rehearsal.stacks(accounts.dev))
    assert {f"ingestion-prod-{kind}" for kind in STAGE_KINDS} <= prod_stacks
    assert not [s for s in prod_stacks if s.startswith("ingestion-dev")]
    assert not [s for s in dev_stacks if s.startswith("ingestion-prod")]
    assert "IngestionPipeline" in rehearsal.stacks(accounts.pipeline)
    # The record of the run: JSON, the HTML timeline, each action's log and the checks' reports.
    assert rehearsal.lab("status") == 0
    document = (rehearsal.rdir.reports / f"pipeline-{record.id}.json").read_text()
    assert '"status": "Succeeded"' in document
    page = (rehearsal.rdir.reports / f"pipeline-{record.id}.html").read_text()
    assert "PromoteToProd" in page
    gameday = record.action("Dev", "PoisonPillGameday")
    assert any(link.label.endswith(".html") and "gameday" in link.label for link in gameday.links)
    assert any(link.label.endswith("gate.json") for link in record.action("Dev", "LoadTest").links)
