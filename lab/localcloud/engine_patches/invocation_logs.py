"""A Python function's log lines are collected up to an end-of-invocation mark, not by waiting.

ministack's warm Python worker writes the handler's output to stderr, which a reader thread puts
on a queue; after each invocation the engine polls that queue every millisecond until it has been
quiet for 5 ms, or for 50 ms when nothing came (ministack's `Worker._drain_stderr_bounded`). So a
handler that logs nothing (ingest, on success) pays 50 ms per invocation, every invocation pays a
poll loop in the engine process, and a line still in the pipe after the quiet period is attributed
to the next invocation's log stream (or lost when the worker is recycled).

On AWS the runtime delimits each invocation: the function's output between the runtime's `/next`
and its response belongs to that invocation, and CloudWatch Logs shows it between the invocation's
START and END lines (AWS Lambda Developer Guide, "Working with Lambda function logs" and "Lambda
runtime API"). This patch gives the engine the same boundary: the worker writes a mark to stderr
after the handler returns or raises (before its response), and the engine takes lines up to that
mark, waiting on the queue (no polling), at most HARD_CAP_SECONDS should the mark never come.
Conformance: tests/local/engine/test_invocation_logs.py.
"""

from __future__ import annotations

import queue
import time
from typing import Any

from ministack.core import lambda_runtime

from .engine_hooks import LOG, require

# Written by the worker on a line of its own after each invocation; never shown in the logs.
END_MARK = "\x1e__lab_invocation_end__"
# Only reached if the worker died before writing its mark (its output so far is kept).
HARD_CAP_SECONDS = 2.0

# The worker script's lines this patch extends (ministack's `run()` of _PYTHON_WORKER_SCRIPT): the
# response is flushed once per invocation, after the handler returned or raised.
_RESPONSE_FLUSH = (
    '            _real_stdout.write(json.dumps({"status": "error", "error": str(e), '
    '"trace": traceback.format_exc()}) + "\\n")\n'
    "        _real_stdout.flush()\n"
)


def worker_script_with_end_mark(script: str) -> str:
    """The Python worker script, writing END_MARK to stderr before each response."""
    if script.count(_RESPONSE_FLUSH) != 1:
        raise SystemExit("engine_patches: ministack's Python worker script changed: update invocation_logs")
    marked = _RESPONSE_FLUSH.replace(
        "        _real_stdout.flush()\n",
        f'        sys.stderr.write({END_MARK!r} + "\\n")\n        sys.stderr.flush()\n'
        "        _real_stdout.flush()\n",
    )
    return script.replace(_RESPONSE_FLUSH, marked)


def drain_to_end_mark(lines: queue.Queue[str], *, hard_cap: float = HARD_CAP_SECONDS) -> tuple[str, bool]:
    """The lines before the next END_MARK, and whether the mark came (False: hard cap reached)."""
    taken: list[str] = []
    deadline = time.monotonic() + hard_cap
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "\n".join(taken), False
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            return "\n".join(taken), False
        if line == END_MARK:
            return "\n".join(taken), True
        taken.append(line)


def install() -> None:
    require(lambda_runtime, "_detect_runtime_binary")
    require(lambda_runtime.Worker, "_drain_stderr_bounded", "_drain_stderr")
    lambda_runtime._PYTHON_WORKER_SCRIPT = worker_script_with_end_mark(lambda_runtime._PYTHON_WORKER_SCRIPT)
    bounded = lambda_runtime.Worker._drain_stderr_bounded
    unbounded = lambda_runtime.Worker._drain_stderr

    def drain_invocation(self: Any, *args: Any, **kwargs: Any) -> str:
        if not str(self.config.get("Runtime", "")).startswith("python"):
            return str(bounded(self, *args, **kwargs))
        text, complete = drain_to_end_mark(self._stderr_queue)
        if not complete:
            LOG.warning("%s: no end-of-invocation mark within %.1f s", self.func_name, HARD_CAP_SECONDS)
        return text

    def drain_available(self: Any) -> str:
        # The timed-out path: the worker is killed, no mark will come; keep what it wrote.
        return "\n".join(line for line in str(unbounded(self)).split("\n") if line != END_MARK)

    lambda_runtime.Worker._drain_stderr_bounded = drain_invocation
    lambda_runtime.Worker._drain_stderr = drain_available
