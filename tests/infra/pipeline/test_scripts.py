"""pipeline/scripts/smoke.sh against a scripted HTTP API on 127.0.0.1: what it sends, what passes,
what fails, what it retries (the local tier runs it against the real local stage).

The scripted API authorizes like the stage's: GET /redrive/preview (an operator route, IAM
authorization) answers only a valid SigV4 signature of the caller, and 403 otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials

from tests import REPO_ROOT
from tests.sigv4 import valid_signature

SMOKE = REPO_ROOT / "pipeline" / "scripts" / "smoke.sh"
REGION = "us-east-1"
# The caller's credentials: temporary ones, as in_stage.sh's assumed role has.
CALLER = Credentials("ASIATESTCALLER", "caller-secret", "caller-session-token")


@dataclass
class ScriptedApi:
    """Answers POST /events and GET /redrive/preview from queues of (status, body); records requests."""

    url: str = ""
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    previews: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)
    signed: list[bool] = field(default_factory=list)


@pytest.fixture
def api() -> Iterator[ScriptedApi]:
    scripted = ScriptedApi()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, queue: list[tuple[int, dict[str, Any]]]) -> None:
            length = int(self.headers.get("content-length", 0))
            raw = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            signed = valid_signature(
                self.command,
                f"http://{headers['host']}{self.path}",
                headers,
                raw,
                credentials=CALLER,
                region=REGION,
            )
            scripted.requests.append((self.command, self.path, headers, raw.decode()))
            scripted.signed.append(signed)
            if self.path.startswith("/redrive/") and not signed:
                status, payload = 403, {"message": "Forbidden"}  # API Gateway's IAM authorization failure
            else:
                status, payload = queue.pop(0) if len(queue) > 1 else queue[0]
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._answer(scripted.events)

        def do_GET(self) -> None:
            self._answer(scripted.previews)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scripted.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        server.shutdown()
        server.server_close()


def smoke(api: ScriptedApi, **env: str) -> subprocess.CompletedProcess[str]:
    """`bash smoke.sh` as the pipeline runs it, as a caller holding CALLER's credentials; `python3`
    is this interpreter (botocore resolves the credentials where the AWS CLI is v1)."""
    base = {key: value for key, value in os.environ.items() if not key.startswith(("LAB_", "AWS_"))}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    caller = {
        "AWS_ACCESS_KEY_ID": CALLER.access_key,
        "AWS_SECRET_ACCESS_KEY": CALLER.secret_key,
        "AWS_SESSION_TOKEN": CALLER.token,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    return subprocess.run(
        ["bash", str(SMOKE)],
        env={**base, **caller, "ApiUrl": api.url, "SMOKE_ATTEMPTS": "3", "SMOKE_RETRY_SECONDS": "0", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


Answer = tuple[int, dict[str, Any]]
ACCEPTED: Answer = (202, {"idempotencyKey": "k-1", "messageId": "m-1"})
PREVIEW: Answer = (200, {"messages": []})


def test_passes_when_the_event_is_accepted_and_the_preview_answers(api: ScriptedApi) -> None:
    api.events, api.previews = [ACCEPTED], [PREVIEW]
    result = smoke(api, LAB_API_KEY="the-key")
    assert result.returncode == 0, result.stderr
    assert "smoke: accepted with idempotencyKey k-1" in result.stdout
    (post, post_path, post_headers, body), (get, get_path, get_headers, _) = api.requests
    assert (post, post_path, get, get_path) == ("POST", "/events", "GET", "/redrive/preview?maxMessages=1")
    event = json.loads(body)
    assert event["orderId"].startswith("smoke-")
    assert event["amount"] == 42.5
    assert post_headers["content-type"] == "application/json"
    # The producer's key goes to POST /events only; the operator route is signed as the caller.
    assert post_headers["x-api-key"] == "the-key"
    assert "authorization" not in post_headers
    assert api.signed == [False, True]
    assert "x-api-key" not in get_headers
    assert get_headers["x-amz-security-token"] == CALLER.token


def test_an_unsigned_or_wrongly_signed_preview_fails_with_the_api_answer(api: ScriptedApi) -> None:
    api.events, api.previews = [ACCEPTED], [PREVIEW]
    result = smoke(api, AWS_SECRET_ACCESS_KEY="not-the-callers-secret")
    assert result.returncode == 1
    assert "smoke: FAILED GET /redrive/preview?maxMessages=1 -> 403 (expected 200)" in result.stderr
    assert api.signed == [False, False]


def test_sends_the_bearer_token_for_jwt_stages(api: ScriptedApi) -> None:
    api.events, api.previews = [ACCEPTED], [PREVIEW]
    result = smoke(api, LAB_BEARER_TOKEN="a.b.c")
    assert result.returncode == 0, result.stderr
    (_, _, post_headers, _), (_, _, get_headers, _) = api.requests
    assert post_headers["authorization"] == "Bearer a.b.c"
    assert get_headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIATESTCALLER/")
    assert all("x-api-key" not in headers for _, _, headers, _ in api.requests)


def test_fails_on_a_202_without_an_idempotency_key(api: ScriptedApi) -> None:
    api.events, api.previews = [(202, {"messageId": "m-1"})], [PREVIEW]
    result = smoke(api)
    assert result.returncode == 1
    assert "answered 202 without an idempotencyKey" in result.stderr


def test_fails_at_once_on_a_client_error(api: ScriptedApi) -> None:
    api.events, api.previews = [(403, {"message": "Forbidden"})], [PREVIEW]
    result = smoke(api)
    assert result.returncode == 1
    assert "smoke: FAILED POST /events -> 403 (expected 202)" in result.stderr
    assert len(api.requests) == 1


def test_retries_server_errors_of_a_fresh_stage(api: ScriptedApi) -> None:
    api.events, api.previews = [(503, {"message": "Service Unavailable"}), ACCEPTED], [PREVIEW]
    result = smoke(api)
    assert result.returncode == 0, result.stderr
    assert [method for method, _, _, _ in api.requests] == ["POST", "POST", "GET"]


def test_fails_when_the_preview_does_not_answer_200(api: ScriptedApi) -> None:
    api.events, api.previews = [ACCEPTED], [(500, {"message": "Internal Server Error"})]
    result = smoke(api)
    assert result.returncode == 1
    assert "smoke: FAILED GET /redrive/preview?maxMessages=1 -> 500" in result.stderr
    assert len([r for r in api.requests if r[0] == "GET"]) == 3  # SMOKE_ATTEMPTS
