"""At-least-once mode: a configurable share of SQS receives, EventBridge rule deliveries and SNS
deliveries are duplicated, so that local tests meet the duplicates AWS is allowed to make.

What ministack 1.5.33 does: every delivery exactly once (a deleted SQS message never returns, a rule
target and an SNS subscription get each event once).
What AWS does:
- SQS standard queues: "On rare occasions, one of the servers that stores a copy of a message might
  be unavailable when you receive or delete a message. If this occurs, the copy isn't deleted on
  that unavailable server, and you might get that message copy again when you receive messages"
  (SQS developer guide, "At-least-once delivery",
  docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/standard-queues-at-least-once-delivery.html).
  Modelled as that lost delete: a chosen receive, once deleted, leaves a copy (same MessageId, body
  and attributes) that becomes visible when the receive's visibility timeout ends. A message that
  is not deleted (released, timed out, failed in a partial batch) comes back anyway.
- EventBridge: "EventBridge ... guarantees at-least-once delivery: a target can receive an event
  more than once" (EventBridge user guide, event delivery; consumers must be idempotent): the rule
  invokes the chosen target twice with the same event (same event id).
- SNS standard topics deliver at least once (SNS developer guide, "Message delivery": subscribers
  must be idempotent): the chosen subscription receives the notification twice.
Each duplicate is counted in the record (delivery_stats) by kind and receiving resource.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ministack.services import eventbridge, sns, sqs

from .delivery_stats import (
    RULE_DELIVERY,
    SEED_ENV,
    SHARE_ENV,
    SNS_DELIVERY,
    SQS_RECEIVE,
    STATS_ENV,
    DuplicateRecord,
    parse_share,
)
from .engine_hooks import LOG, require

# Set on a received message chosen to leave a copy behind when it is deleted.
COPY_ON_DELETE = "_lab_copy_on_delete"


class Duplicator:
    """The share, the random choice (seedable for a reproducible run) and the record."""

    def __init__(self, share: float, record: DuplicateRecord, rng: random.Random) -> None:
        self.share = share
        self.record = record
        self._rng = rng

    def chosen(self) -> bool:
        return self.share > 0 and self._rng.random() < self.share


# --- SQS: a lost delete leaves a copy --------------------------------------------------------------


def choose_receives(
    duplicator: Duplicator, original: Callable[..., list[dict[str, Any]]]
) -> Callable[..., list[dict[str, Any]]]:
    def collect(q: dict[str, Any], max_n: int, vis_timeout: int) -> list[dict[str, Any]]:
        received = original(q, max_n, vis_timeout)
        for message in received:
            # FIFO queues deliver exactly once within their deduplication window: never duplicated.
            message[COPY_ON_DELETE] = not q.get("is_fifo") and duplicator.chosen()
        return received

    return collect


def copy_left_behind(message: dict[str, Any]) -> dict[str, Any]:
    """The copy on the server that missed the delete: visible again when this receive's
    visibility timeout ends. Its receive count is approximate on AWS; the copy's is the count
    before this receive, so a copy alone never pushes a message over maxReceiveCount."""
    copy = {key: value for key, value in message.items() if key != COPY_ON_DELETE}
    copy["receipt_handle"] = None
    copy["receive_count"] = max(0, int(message.get("receive_count", 1)) - 1)
    return copy


def _leave(duplicator: Duplicator, q: dict[str, Any], copies: list[dict[str, Any]]) -> None:
    """Put back the copies of the messages the delete really removed (a refused delete, such as
    one with a stale receipt handle, removed nothing and leaves nothing)."""
    present = {m.get("receipt_handle") for m in q.get("messages", [])}
    arn = str(q.get("attributes", {}).get("QueueArn", ""))
    for copy in copies:
        if copy.get("_lab_handle") in present:
            continue
        copy.pop("_lab_handle", None)
        q["messages"].append(copy)
        duplicator.record.add(SQS_RECEIVE, arn)


def _with_handles(q: dict[str, Any], handles: set[str]) -> list[dict[str, Any]]:
    """Copies of the chosen messages among those the delete names, each tagged with its handle."""
    copies = []
    for m in q.get("messages", []):
        if m.get(COPY_ON_DELETE) and m.get("receipt_handle") in handles:
            copy = copy_left_behind(m)
            copy["_lab_handle"] = m.get("receipt_handle")
            copies.append(copy)
    return copies


def deletes_leave_copies(
    duplicator: Duplicator, action: str, original: Callable[..., Any]
) -> Callable[..., Any]:
    """DeleteMessage / DeleteMessageBatch of the API."""

    def delete(data: dict[str, Any], qurl: str) -> Any:
        handles = (
            {str(data.get("ReceiptHandle", ""))}
            if action == "DeleteMessage"
            else {str(e.get("ReceiptHandle", "")) for e in data.get("Entries", [])}
        )
        try:
            q = sqs._get_q(data.get("QueueUrl", qurl))
        except Exception:  # the original reports a missing queue its own way
            return original(data, qurl)
        copies = _with_handles(q, handles)
        result = original(data, qurl)
        if copies:
            _leave(duplicator, q, copies)
        return result

    return delete


def esm_deletes_leave_copies(duplicator: Duplicator, original: Callable[..., Any]) -> Callable[..., Any]:
    """The Lambda event source mapping deletes what the function processed through this helper."""

    def delete(queue_url: str, receipt_handles: set[str]) -> Any:
        if not receipt_handles:
            return original(queue_url, receipt_handles)
        with sqs._queues_lock:
            q = sqs._get_q(queue_url)
            copies = _with_handles(q, set(receipt_handles))
        result = original(queue_url, receipt_handles)
        if copies:
            with sqs._queues_lock:
                _leave(duplicator, q, copies)
        return result

    return delete


# --- EventBridge rule targets and SNS subscriptions: delivered twice -------------------------------


def rule_targets_twice(duplicator: Duplicator, original: Callable[..., Any]) -> Callable[..., Any]:
    def invoke(target: dict[str, Any], event: dict[str, Any], rule: dict[str, Any], view: Any = None) -> Any:
        result = original(target, event, rule, view)
        if duplicator.chosen():
            original(target, event, rule, view)
            duplicator.record.add(RULE_DELIVERY, str(target.get("Arn", "")))
        return result

    return invoke


def sns_deliveries_twice(duplicator: Duplicator, original: Callable[..., Any]) -> Callable[..., Any]:
    """SNS -> SQS and SNS -> Lambda subscriptions (the endpoint is their first argument)."""

    def deliver(endpoint: str, *args: Any, **kwargs: Any) -> Any:
        result = original(endpoint, *args, **kwargs)
        if duplicator.chosen():
            original(endpoint, *args, **kwargs)
            duplicator.record.add(SNS_DELIVERY, endpoint)
        return result

    return deliver


def sns_http_deliveries_twice(duplicator: Duplicator, original: Callable[..., Any]) -> Callable[..., Any]:
    async def deliver(endpoint: str, payload: str) -> None:
        await original(endpoint, payload)
        if duplicator.chosen():
            await original(endpoint, payload)
            duplicator.record.add(SNS_DELIVERY, endpoint)

    return deliver


def install() -> float:
    """Install when the engine was started with a share > 0; returns the share."""
    share = parse_share(os.environ.get(SHARE_ENV))
    if share == 0:
        return 0.0
    require(sqs, "_collect_msgs", "_get_q", "_delete_messages_for_esm")
    require(eventbridge, "_invoke_target")
    require(sns, "_deliver_to_sqs", "_deliver_to_lambda", "_deliver_to_http")
    handlers = getattr(sqs, "_HANDLERS", {})
    for action in ("DeleteMessage", "DeleteMessageBatch"):
        if not callable(handlers.get(action)):
            raise SystemExit(f"engine_patches: ministack's sqs._HANDLERS has no {action}: update the lab")
    stats = os.environ.get(STATS_ENV)
    seed = os.environ.get(SEED_ENV)
    duplicator = Duplicator(
        share,
        DuplicateRecord(share, Path(stats) if stats else None),
        random.Random(int(seed)) if seed else random.Random(),  # noqa: S311 - a fault injector, not cryptography
    )
    sqs._collect_msgs = choose_receives(duplicator, sqs._collect_msgs)
    for action in ("DeleteMessage", "DeleteMessageBatch"):
        handlers[action] = deletes_leave_copies(duplicator, action, handlers[action])
    sqs._delete_messages_for_esm = esm_deletes_leave_copies(duplicator, sqs._delete_messages_for_esm)
    eventbridge._invoke_target = rule_targets_twice(duplicator, eventbridge._invoke_target)
    sns._deliver_to_sqs = sns_deliveries_twice(duplicator, sns._deliver_to_sqs)
    sns._deliver_to_lambda = sns_deliveries_twice(duplicator, sns._deliver_to_lambda)
    sns._deliver_to_http = sns_http_deliveries_twice(duplicator, sns._deliver_to_http)
    LOG.warning("at-least-once mode: %.0f%% of SQS receives, rule and SNS deliveries duplicated", share * 100)
    return share
