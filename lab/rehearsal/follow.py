"""Following an execution: one line per stage and action as they start and finish, across the
restarts of self-mutation, until the run ends or (optionally) waits for an approval."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.localcloud.codepipeline.execution import WAITING, ExecutionRecord, PipelineHome

Print = Callable[[str], None]
# Asked when an action waits for approval: "approve", "reject", or None to stop following.
Prompt = Callable[[ExecutionRecord, str, str], str | None]


def describe(event: dict[str, Any], started_at: float) -> str | None:
    """A readable line for one event, or None for events not worth a line."""
    offset = f"[{event['at'] - started_at:7.1f}s]"
    kind, status = event.get("kind"), event.get("status", "")
    message = f"  {event['message']}" if event.get("message") else ""
    if kind == "execution":
        return f"{offset} execution {status}{message}"
    if kind == "stage":
        return f"{offset} {event['stage']:<14} {status}{message}"
    if kind == "action":
        took = f" ({event['seconds']:.0f} s)" if event.get("seconds") else ""
        return f"{offset} {event['stage']:<14} {event['action']:<36} {status}{took}{message}"
    return None


@dataclass
class Follower:
    home: PipelineHome
    say: Print
    poll_s: float = 0.5

    def follow(
        self, execution_id: str, *, stop_at_approval: bool = False, prompt: Prompt | None = None
    ) -> ExecutionRecord:
        """Print until the execution (and any restart of it) ends; return its last record."""
        current = execution_id
        while True:
            record, next_id = self._one(current, stop_at_approval=stop_at_approval, prompt=prompt)
            if next_id is None:
                return record
            self.say(f"following the restarted execution {next_id}")
            current = next_id

    def _one(
        self, execution_id: str, *, stop_at_approval: bool, prompt: Prompt | None
    ) -> tuple[ExecutionRecord, str | None]:
        offset = 0
        started = self.home.load(execution_id).started_at
        asked: set[str] = set()
        while True:
            events, offset = self.home.read_events(execution_id, offset)
            next_id = None
            for event in events:
                line = describe(event, started)
                if line:
                    self.say(line)
                next_id = event.get("next") or next_id
                if event.get("kind") == "action" and event.get("status") == WAITING:
                    key = f"{event['stage']}.{event['action']}"
                    if stop_at_approval:
                        return self.home.load(execution_id), None
                    if prompt is not None and key not in asked:
                        asked.add(key)
                        if not self._ask(execution_id, event, prompt):
                            return self.home.load(execution_id), None
            record = self.home.load(execution_id)
            if record.finished and not events:
                return record, next_id or self._restarted_as(execution_id)
            time.sleep(self.poll_s)

    def _ask(self, execution_id: str, event: dict[str, Any], prompt: Prompt) -> bool:
        """Ask; record the answer. False when the person chose to decide later."""
        record = self.home.load(execution_id)
        answer = prompt(record, event["stage"], event["action"])
        if answer is None:
            return False
        result = "Approved" if answer == "approve" else "Rejected"
        self.home.answer(
            execution_id,
            f"approval.{event['stage']}.{event['action']}",
            result=result,
            by="lab pipeline run",
            summary="answered at the prompt",
        )
        return True

    def _restarted_as(self, execution_id: str) -> str | None:
        events, _ = self.home.read_events(execution_id)
        return next((e["next"] for e in reversed(events) if e.get("next")), None)
