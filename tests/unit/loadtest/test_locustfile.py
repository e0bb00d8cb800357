"""The Locust users and the runner against a scripted ingest API on 127.0.0.1 (no AWS, --skip-verify).

Locust runs in a child process (importing it here would gevent-patch the test process); the API is
a stdlib HTTP server whose answers each test controls.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtest import gate
from loadtest.keyfile import DUPLICATE_REQUEST_NAME, UNIQUE_REQUEST_NAME, read_keys
from loadtest.run import build_parser, run

Answer = Callable[[int, bytes], tuple[int, dict[str, str]]]


def stable_key(_: int, body: bytes) -> tuple[int, dict[str, str]]:
    return 202, {"idempotencyKey": hashlib.sha256(body).hexdigest(), "messageId": str(uuid.uuid4())}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Answer], None]]:
    """Start the scripted API; the test chooses how it answers. ApiUrl points the runner at it."""
    answer: list[Answer] = [stable_key]
    counter = itertools.count()
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            seen.append({"path": self.path, "content-type": self.headers.get("content-type", "")})
            status, document = answer[0](next(counter), body)
            raw = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ApiUrl", f"http://127.0.0.1:{server.server_address[1]}/prefix")
    try:
        yield lambda chosen: answer.__setitem__(0, chosen)
    finally:
        server.shutdown()
        server.server_close()
    assert seen, "the Locust users never reached the API"
    assert {request["path"] for request in seen} == {"/prefix/events"}
    assert {request["content-type"] for request in seen} == {"application/json"}


def _run(tmp_path: Path, *extra: str) -> tuple[int, dict[str, object]]:
    args = build_parser().parse_args(
        ["--target", "env", "--skip-verify", "--users", "2", "--spawn-rate", "2", "--run-time", "2s",
         "--rps-per-user", "20", "--duplicate-pool-size", "3", "--out-dir", str(tmp_path), *extra]
    )  # fmt: skip
    status = run(args)
    return status, json.loads((tmp_path / "gate.json").read_text())


def test_both_users_run_and_every_accepted_payload_is_recorded(
    api: Callable[[Answer], None], tmp_path: Path
) -> None:
    api(stable_key)

    # Long enough for more re-sends than the pool holds even on a loaded machine (at 2 s, Locust
    # once stopped after a single re-send while the local tier ran beside it).
    status, result = _run(tmp_path, "--run-time", "6s")

    assert status == 0, result
    stats = gate.read_locust_stats(tmp_path / "locust.json")
    unique, duplicate = stats.by_name[UNIQUE_REQUEST_NAME], stats.by_name[DUPLICATE_REQUEST_NAME]
    assert unique.requests > 0
    assert duplicate.requests > 0
    keys = read_keys(tmp_path / "keys.jsonl")
    assert len(keys.unique) == len(set(keys.unique)) == unique.requests
    # The pool holds 3 payloads: re-sends add at most 3 distinct keys, whatever the request count.
    assert 1 <= len(keys.pool) <= 3 < duplicate.requests


def test_a_resent_payload_that_gets_a_new_key_fails_the_run(
    api: Callable[[Answer], None], tmp_path: Path
) -> None:
    api(lambda n, body: (202, {"idempotencyKey": f"drifting-{n}", "messageId": "m"}))

    # A drift shows only on a re-send of a pool payload: 6 s, as above (at 2 s, beside the local
    # tier, Locust once stopped after one request per user, and the run passed).
    status, result = _run(tmp_path, "--run-time", "6s")

    assert status == 1
    stats = gate.read_locust_stats(tmp_path / "locust.json")
    assert stats.by_name[DUPLICATE_REQUEST_NAME].failures > 0
    assert stats.by_name[UNIQUE_REQUEST_NAME].failures == 0
    assert any("--max-failure-ratio" in breach for breach in result["breaches"])  # type: ignore[attr-defined]


def test_rejected_requests_count_as_failures_and_record_no_key(
    api: Callable[[Answer], None], tmp_path: Path
) -> None:
    api(lambda n, body: (503, {"error": "unavailable"}) if n % 2 else stable_key(n, body))

    status, result = _run(tmp_path, "--max-failure-ratio", "0.9")

    assert status == 0, result
    stats = gate.read_locust_stats(tmp_path / "locust.json")
    assert 0.3 < stats.total.failure_ratio < 0.7
    unique = stats.by_name[UNIQUE_REQUEST_NAME]
    assert len(read_keys(tmp_path / "keys.jsonl").unique) == unique.requests - unique.failures
