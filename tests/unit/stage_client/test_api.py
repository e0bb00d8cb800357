"""The lab's HTTP side against a stub API on 127.0.0.1: call_api, send, redrive client, run files.

The stub authorizes like the stage's API: its operator routes (/redrive/*) take only a valid SigV4
signature for execute-api (IAM authorization) and answer 403 otherwise, as API Gateway does.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from botocore.credentials import Credentials

from functions.common.names import API_KEY_HEADER, is_operator_path
from stage_client import redrive, send
from stage_client.api import ApiError, call_api
from stage_client.target import BEARER_TOKEN_ENV, Target
from tests.sigv4 import valid_signature
from tests.unit.conftest import REGION

# What tests/unit/conftest.py puts in the environment: the caller's credentials here.
CALLER = Credentials("testing", "testing", "testing")
SIGV4 = "AWS4-HMAC-SHA256 "


@dataclass
class StubApi:
    """Answers like the stage's API; records every request; can be told to fail N times."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    job_polls: int = 0
    duplicate: bool = False

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:  # noqa: PLR0911 - one return per stub route
        if self.fail_next:
            return self.fail_next.pop(0), {"error": "busy"}
        if (method, path) == ("POST", "/events"):
            if not isinstance(body, dict) or "orderId" not in body:
                return 400, {"error": "schema", "message": "orderId is required"}
            key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            answer = {"idempotencyKey": key, "messageId": f"m-{len(self.requests)}"}
            if self.duplicate:
                answer["duplicateMessageId"] = f"d-{len(self.requests)}"
            return 202, answer
        if (method, path) == ("GET", "/redrive/preview"):
            return 200, {
                "messages": [{"idempotencyKey": "k", "errorType": query.get("errorType", [None])[0]}]
            }
        if (method, path) == ("POST", "/redrive/start"):
            return 202, {"jobId": "job-1", "status": "PENDING"}
        if (method, path) == ("GET", "/redrive/status"):
            self.job_polls += 1
            done = self.job_polls >= 3
            return 200, {
                "jobId": query["jobId"][0],
                "status": "SUCCEEDED" if done else "RUNNING",
                "counters": {
                    "received": 4,
                    "moved": 4 if done else 2,
                    "skipped": 0,
                    "quarantined": 0,
                    "failed": 0,
                },
            }
        if (method, path) == ("POST", "/redrive/cancel"):
            return 202, {"jobId": body["jobId"], "status": "CANCEL_REQUESTED"}
        return 404, {"error": "not found"}


@pytest.fixture
def stub() -> Iterator[tuple[StubApi, Target]]:
    api = StubApi()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            seen = {name.lower(): value for name, value in self.headers.items()}
            signed = valid_signature(
                self.command,
                f"http://{seen['host']}{self.path}",
                seen,
                raw,
                credentials=CALLER,
                region=REGION,
            )
            api.requests.append(
                {
                    "method": self.command,
                    "path": url.path,
                    "headers": dict(self.headers),
                    "body": body,
                    "signed": signed,
                }
            )
            if is_operator_path(url.path) and not signed:
                status, answer = 403, {"message": "Forbidden"}  # API Gateway's answer to IAM auth failures
            else:
                status, answer = api.answer(self.command, url.path, parse_qs(url.query), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target = Target(
        name="stub",
        outputs={},
        api_url=f"http://127.0.0.1:{server.server_address[1]}",
        region="us-east-1",
        api_key="s3cret",
    )
    yield api, target
    server.shutdown()
    server.server_close()


def test_call_api_sends_json_and_the_api_key(stub: tuple[StubApi, Target]) -> None:
    api, target = stub
    response = call_api(target, "POST", "/events", body={"orderId": "1", "amount": 1})
    assert response.status == 202
    assert response.ok
    assert len(response.field("idempotencyKey")) == 64
    headers = {k.lower(): v for k, v in api.requests[0]["headers"].items()}
    assert headers["x-api-key"] == "s3cret"
    assert headers["content-type"] == "application/json"


def test_call_api_retries_busy_answers_but_not_client_errors(stub: tuple[StubApi, Target]) -> None:
    api, target = stub
    api.fail_next = [503, 429]
    assert call_api(target, "POST", "/events", body={"orderId": "1"}, retries=2).status == 202
    assert len(api.requests) == 3
    api.fail_next = [400]
    assert call_api(target, "POST", "/events", body={"orderId": "1"}, retries=2).status == 400
    assert len(api.requests) == 4
    api.fail_next = [503, 503]
    assert call_api(target, "POST", "/events", body={"orderId": "1"}, retries=1).status == 503


def test_call_api_raises_when_nothing_listens() -> None:
    target = Target(name="nowhere", outputs={}, api_url="http://127.0.0.1:9", region="us-east-1")
    with pytest.raises(ApiError, match=r"127\.0\.0\.1:9"):
        call_api(target, "GET", "/redrive/preview", retries=0, timeout_s=2)


def test_send_samples_are_unique_and_carry_the_run_id(stub: tuple[StubApi, Target]) -> None:
    _, target = stub
    progress: list[tuple[int, int]] = []
    run_id, sent = send.send_samples(
        target, 12, on_progress=lambda done, total: progress.append((done, total))
    )
    assert len({event.idempotency_key for event in sent}) == 12
    assert progress[-1] == (12, 12)
    assert all(event.payload["runId"] == run_id for event in sent)


def test_send_reports_duplicate_message_ids(stub: tuple[StubApi, Target]) -> None:
    api, target = stub
    api.duplicate = True
    _, sent = send.send_samples(target, 3)
    assert all(event.duplicate_message_id for event in sent)


def test_send_fails_loudly_on_a_rejected_payload(stub: tuple[StubApi, Target]) -> None:
    _, target = stub
    with pytest.raises(send.SendError, match="400"):
        send.send_payloads(target, [{"amount": 1}])


def test_redrive_client_previews_starts_waits_and_cancels(stub: tuple[StubApi, Target]) -> None:
    api, target = stub
    sample = redrive.preview(target, max_messages=5, error_type="SchemaValidationError")
    assert sample.messages == [{"idempotencyKey": "k", "errorType": "SchemaValidationError"}]
    assert redrive.preview_messages(sample.body) == sample.messages
    params = redrive.RedriveParams(
        max_messages=4, filter_error_type="SchemaValidationError", per_message_delay_jitter=3
    )
    job = redrive.start(target, params)
    assert api.requests[-1]["body"] == {
        "maxMessages": 4,
        "filterErrorType": "SchemaValidationError",
        "perMessageDelayJitter": 3,
    }
    seen: list[str] = []
    finished = redrive.wait(target, job.job_id, interval_s=0.01, on_progress=lambda j: seen.append(j.status))
    assert seen == ["RUNNING", "RUNNING", "SUCCEEDED"]
    assert (
        finished.counters
        == redrive.counters(finished.body)
        == {
            "received": 4,
            "moved": 4,
            "skipped": 0,
            "quarantined": 0,
            "failed": 0,
        }
    )
    assert finished.describe().startswith("job job-1 SUCCEEDED: received 4, moved 4")
    assert redrive.cancel(target, "job-1").status == "CANCEL_REQUESTED"


def test_redrive_wait_gives_up_at_its_timeout(stub: tuple[StubApi, Target]) -> None:
    api, target = stub
    api.job_polls = -1000
    with pytest.raises(redrive.RedriveError, match="did not finish"):
        redrive.wait(target, "job-1", timeout_s=0.2, interval_s=0.05)


def test_redrive_errors_carry_the_api_answer(stub: tuple[StubApi, Target]) -> None:
    api, target = stub
    api.fail_next = [400]
    with pytest.raises(redrive.RedriveError, match="400"):
        redrive.start(target, redrive.RedriveParams(max_messages=1))


def test_operator_routes_are_signed_as_the_caller_and_carry_no_producer_credential(
    stub: tuple[StubApi, Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, target = stub
    monkeypatch.setenv(BEARER_TOKEN_ENV, "a.producer.token")
    redrive.preview(target, max_messages=3, error_type="SchemaValidationError")
    redrive.start(target, redrive.RedriveParams(max_messages=2))
    call_api(target, "POST", "/events", body={"orderId": "1", "amount": 1})
    preview, start, events = api.requests
    for request in (preview, start):
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert request["signed"] is True
        assert headers["authorization"].startswith(f"{SIGV4}Credential=testing/")
        assert "/execute-api/aws4_request" in headers["authorization"]
        assert headers["x-amz-security-token"] == "testing"
        assert API_KEY_HEADER not in headers
    producer = {k.lower(): v for k, v in events["headers"].items()}
    assert events["signed"] is False
    assert producer[API_KEY_HEADER] == "s3cret"
    assert producer["authorization"] == "Bearer a.producer.token"


def test_the_stub_refuses_a_signature_made_with_other_credentials(
    stub: tuple[StubApi, Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verifier can fail: a caller whose secret is not the one the stub knows gets 403."""
    api, target = stub
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "someone-else")
    other = Target(name="other", outputs={}, api_url=target.api_url, region=target.region)
    response = call_api(other, "GET", "/redrive/preview", retries=0)
    assert (response.status, response.body) == (403, {"message": "Forbidden"})
    assert api.requests[-1]["headers"]["Authorization"].startswith(SIGV4)


def test_an_operator_call_without_aws_credentials_says_what_is_missing(
    stub: tuple[StubApi, Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, target = stub
    monkeypatch.setattr(Target, "credentials", lambda self: None)
    with pytest.raises(ApiError, match=r"operator route .*AWS credentials"):
        call_api(target, "POST", "/redrive/cancel", body={"jobId": "j"})
    assert api.requests == []
