"""A DynamoDB stream event source mapping gathers records for its batching window, and its batches
run off the engine's poll thread, one at a time per mapping.

What ministack 1.5.33 does (`lambda_svc._poll_dynamodb_streams`, run by the single ESM poll thread):
it ignores MaximumBatchingWindowInSeconds, invoking the function as soon as one record is past the
mapping's position, so the relay (BatchSize 1000, window 1 s) gets batches of a few records and
publishes far more PutEvents calls per event than on AWS; and it invokes the function on the poll
thread itself, so while a stream function runs no SQS mapping of the engine is polled or dispatched.

What AWS does:
- MaximumBatchingWindowInSeconds is "the maximum amount of time, in seconds, that Lambda spends
  gathering records before invoking the function"; BatchSize is "the maximum number of records in
  each batch that Lambda pulls from your stream ... up to the payload limit for synchronous
  invocation (6 MB)" (Lambda API Reference, CreateEventSourceMapping; AWS Lambda Developer Guide,
  "Using AWS Lambda with Amazon DynamoDB", "Polling and batching streams": Lambda invokes when the
  batch is full, the batching window expires, or the batch reaches the 6 MB payload limit;
  "Lambda parameters for Amazon DynamoDB event source mappings": the window defaults to 0).
- ParallelizationFactor, "the number of batches to process concurrently from each shard", defaults
  to 1: the batches of a shard are processed in order, one at a time, and the shard's checkpoint
  moves only when a batch succeeds (same guide, "Error handling").

What this patch does: `_poll_dynamodb_streams` is replaced by a copy of ministack's, cut into
functions of the lab's complexity limit, that differs in three places only, marked `# lab:` below:
1. a mapping with a batch in flight is skipped (one batch per mapping: the engine's stream has one
   shard, and ParallelizationFactor above 1 is not modelled);
2. a batch short of BatchSize waits until the oldest of its records has been pending for the window
   (batching_window.BatchingWindows; records are noted on every pass, so the position is read
   before the back-off and in-flight checks rather than after), and the poll loop is woken when
   the window closes;
3. the function is invoked through ministack's own `_dispatch_esm_batch` (the one its SQS mappings
   use, with its per-mapping in-flight count and wake on completion); the result handling after it
   is ministack's, unchanged, in that thread: the position advances only when the invocation
   succeeds; a failure backs off and retries the same batch, or gives it up to the on-failure
   destination past MaximumRecordAgeInSeconds (ministack neither bisects nor counts retries:
   tests/local/engine/test_dynamodb_streams.py asserts that gap by name).
BatchSize counts the records read from the stream, before FilterCriteria, as ministack already
reads them: a batch is then a contiguous range of the shard (what the DDBStreamBatchInfo of an
on-failure record names), and an invocation may carry fewer records than BatchSize. The 6 MB
payload limit is not modelled (ministack does not enforce it either); the relay's records are small.
Conformance: tests/local/engine/test_dynamodb_streams.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ministack.services import dynamodb, lambda_svc

from .batching_window import BatchingWindows, WakeAt, should_dispatch
from .engine_hooks import require, require_state

_windows = BatchingWindows()
_wake_at = WakeAt(lambda: lambda_svc._esm_wake.set())  # noqa: PLW0108 - read at call time, not install time

# What the copy below reads from ministack at call time (so other patches' replacements apply).
_LAMBDA_FUNCTIONS = (
    "_poll_dynamodb_streams",
    "_dispatch_esm_batch",
    "_execute_function",
    "_apply_filter_criteria",
    "_send_ddb_stream_failure_record",
    "_iter_all_esms",
    "_get_func_record_for_qualifier",
    "_dynamodb_stream_table_from_arn_spec",
    "_release_esm_poll_state",
    "parse_arn",
    "get_account_id",
    "get_region",
)
_LAMBDA_STATE = (
    "_esm_inflight",
    "_esm_wake",
    "_esm_backoff_until",
    "_dynamodb_stream_positions",
    "_dynamodb_stream_positions_lock",
    "_request_account_id",
    "_request_region",
    "_ESM_BACKOFF_SECONDS",
    "ArnParseError",
    "logger",
)


@dataclass(frozen=True)
class MappedStream:
    """An enabled mapping of this account and region, its table's current stream and its function."""

    esm: dict[str, Any]
    table_name: str
    source_arn: str
    func_rec: dict[str, Any]


@dataclass(frozen=True)
class StreamBatch:
    """A batch handed to a dispatch thread: its records after filtering, and the range it covers."""

    mapped: MappedStream
    records: list[dict[str, Any]]
    position: int
    raw_len: int


def poll_dynamodb_streams() -> bool:
    """ministack's `_poll_dynamodb_streams` with the three differences of the module docstring.
    Returns True if a mapping dispatched a batch or moved past a filtered one this pass."""
    ms = lambda_svc
    if getattr(dynamodb, "_stream_records", None) is None:
        return False
    processed_any = False
    for acct_id, region, esm in ms._iter_all_esms():
        account_token = ms._request_account_id.set(acct_id)
        region_token = ms._request_region.set(region)
        try:
            processed_any = poll_mapping(esm) or processed_any
        finally:
            ms._request_account_id.reset(account_token)
            ms._request_region.reset(region_token)
    return processed_any


def own_table_stream(source_arn: str) -> str | None:
    """The table whose stream `source_arn` names, when it is in this pass's account and region."""
    ms = lambda_svc
    try:
        source_spec = ms.parse_arn(source_arn)
    except ms.ArnParseError:
        return None
    if (
        source_spec.service != "dynamodb"
        or source_spec.account_id != ms.get_account_id()
        or source_spec.region != ms.get_region()
    ):
        return None
    table_stream = ms._dynamodb_stream_table_from_arn_spec(source_spec)
    return None if table_stream is None else str(table_stream[0])


def mapped_stream(esm: dict[str, Any]) -> MappedStream | None:
    source_arn = esm.get("EventSourceArn", "")
    table_name = own_table_stream(source_arn) if esm.get("Enabled", True) else None
    if table_name is None:
        return None
    func_rec, _cfg = lambda_svc._get_func_record_for_qualifier(esm["FunctionName"], esm.get("Qualifier"))
    if func_rec is None:
        return None
    table = dynamodb._tables.get(table_name)
    if not table or table.get("LatestStreamArn") != source_arn:
        return None
    return MappedStream(esm, table_name, source_arn, func_rec)


def read_position(esm: dict[str, Any], horizon: int, end: int) -> int:
    ms = lambda_svc
    esm_id = esm["UUID"]
    with ms._dynamodb_stream_positions_lock:
        if esm_id not in ms._dynamodb_stream_positions:
            starting = esm.get("StartingPosition", "LATEST")
            ms._dynamodb_stream_positions[esm_id] = horizon if starting == "TRIM_HORIZON" else end
        # Records that expired since the last pass are gone; resume at
        # the trim horizon rather than replaying from a stale offset.
        pos = max(ms._dynamodb_stream_positions[esm_id], horizon)
        ms._dynamodb_stream_positions[esm_id] = pos
    return int(pos)


def set_position(esm_id: str, position: int) -> None:
    """Only for a mapping that still exists: a batch may finish after its mapping was deleted."""
    ms = lambda_svc
    with ms._dynamodb_stream_positions_lock:
        if esm_id in ms._dynamodb_stream_positions:
            ms._dynamodb_stream_positions[esm_id] = position


def window_closed(esm: dict[str, Any], position: int, end: int, opened_at: float) -> bool:
    """lab: 2. A batch short of BatchSize waits for its window; the poll loop is woken when it closes."""
    window_seconds = float(esm.get("MaximumBatchingWindowInSeconds") or 0)
    if should_dispatch(
        pending=end - position,
        batch_size=int(esm.get("BatchSize", 100)),
        window_seconds=window_seconds,
        opened_at=opened_at,
        now=time.monotonic(),
    ):
        return True
    _wake_at.schedule(esm["UUID"], opened_at + window_seconds)
    return False


def position_to_read(mapped: MappedStream) -> int | None:
    """The position of the mapping's next batch, when one may be read now."""
    ms = lambda_svc
    horizon = dynamodb.stream_start_position(mapped.table_name)
    end = dynamodb.stream_end_position(mapped.table_name)
    if end == horizon:
        return None
    esm_id = mapped.esm["UUID"]
    pos = read_position(mapped.esm, horizon, end)
    # lab: 2. Noted on every pass, a batch in flight or a back-off too: the records written meanwhile
    # have been waiting since they were written, not since the mapping was free again.
    opened_at = _windows.opened_at(esm_id, pos, end)
    if ms._esm_backoff_until.get(esm_id, 0) > time.time():
        return None
    # lab: 1. one batch in flight per mapping (only this thread dispatches, so the count cannot rise
    # between this check and the dispatch in poll_mapping).
    if ms._esm_inflight.get(esm_id, 0) >= 1:
        return None
    if pos >= end or not window_closed(mapped.esm, pos, end, opened_at):
        return None
    return pos


def poll_mapping(esm: dict[str, Any]) -> bool:
    ms = lambda_svc
    mapped = mapped_stream(esm)
    pos = None if mapped is None else position_to_read(mapped)
    if mapped is None or pos is None:
        return False
    batch = dynamodb.stream_records_since(mapped.table_name, pos, esm.get("BatchSize", 100))
    if not batch:
        return False
    raw_len = len(batch)
    batch = ms._apply_filter_criteria(batch, esm)
    if not batch:
        # All records filtered — advance position so we don't re-evaluate.
        set_position(esm["UUID"], pos + raw_len)
        return True
    # lab: 3. invoke off the poll thread; the result is handled in that thread.
    ms._dispatch_esm_batch(esm["UUID"], run_stream_batch, StreamBatch(mapped, batch, pos, raw_len))
    return True


def run_stream_batch(batch: StreamBatch) -> None:
    """ministack's invocation and result handling of a stream batch, unchanged but for its place:
    a dispatch thread, which runs in the poll pass's account and region context."""
    ms = lambda_svc
    esm, func_name = batch.mapped.esm, batch.mapped.esm["FunctionName"]
    esm_id = esm["UUID"]
    try:
        result = ms._execute_function(batch.mapped.func_rec, {"Records": batch.records})
    except Exception:
        # lab: an error of the engine itself (ministack's poller waited for its next tick after one;
        # off the poll thread, without this pause the same batch would be dispatched again at once).
        ms.logger.exception("ESM: DynamoDB stream batch of %s failed in the engine", func_name)
        ms._esm_backoff_until[esm_id] = time.time() + ms._ESM_BACKOFF_SECONDS
        return
    if result.get("error"):
        err_body = result.get("body") or {}
        err_type = err_body.get("errorType") if isinstance(err_body, dict) else None
        err_msg = err_body.get("errorMessage") if isinstance(err_body, dict) else None
        esm["LastProcessingResult"] = "FAILED"
        ms.logger.warning(
            "ESM: Lambda %s failed processing DynamoDB stream batch from %s "
            "(errorType=%s errorMessage=%s)\n%s",
            func_name, batch.mapped.table_name, err_type, err_msg, result.get("log", ""),
        )  # fmt: skip
        if gave_up_by_age(batch, result):
            set_position(esm_id, batch.position + batch.raw_len)
            return
        # Position doesn't advance on failure, so the next pass
        # would refetch this exact batch.
        ms._esm_backoff_until[esm_id] = time.time() + ms._ESM_BACKOFF_SECONDS
        return
    ms._esm_backoff_until.pop(esm_id, None)
    set_position(esm_id, batch.position + batch.raw_len)
    esm["LastProcessingResult"] = f"OK - {len(batch.records)} records"
    log_output = result.get("log", "")
    if log_output:
        ms.logger.info("ESM: Lambda %s output:\n%s", func_name, log_output)
    ms.logger.info(
        "ESM: Lambda %s processed %d DynamoDB stream records from %s",
        func_name, len(batch.records), batch.mapped.table_name,
    )  # fmt: skip


def gave_up_by_age(batch: StreamBatch, result: dict[str, Any]) -> bool:
    """ministack's MaximumRecordAgeInSeconds: a failed batch whose oldest record is past the age is
    sent to the on-failure destination (MaxRecordAgeExceeded), and the shard moves past it."""
    esm = batch.mapped.esm
    max_age = esm.get("MaximumRecordAgeInSeconds")
    if not max_age or int(max_age) <= 0:
        return False
    oldest = min(
        (
            float((r.get("dynamodb") or {}).get("ApproximateCreationDateTime", time.time()))
            for r in batch.records
        ),
        default=time.time(),
    )
    if (time.time() - oldest) <= int(max_age):
        return False
    lambda_svc._send_ddb_stream_failure_record(
        esm, batch.mapped.func_rec, batch.records, batch.mapped.source_arn, result, "MaxRecordAgeExceeded"
    )
    return True


def install() -> None:
    require(lambda_svc, *_LAMBDA_FUNCTIONS)
    require_state(lambda_svc, *_LAMBDA_STATE)
    require(dynamodb, "stream_start_position", "stream_end_position", "stream_records_since")
    require_state(dynamodb, "_tables", "_stream_records")
    release = lambda_svc._release_esm_poll_state

    def release_with_window(esm_id: str) -> None:
        release(esm_id)
        _windows.release(esm_id)
        _wake_at.release(esm_id)

    lambda_svc._release_esm_poll_state = release_with_window
    lambda_svc._poll_dynamodb_streams = poll_dynamodb_streams
