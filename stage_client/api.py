"""Calls to the stage's HTTP API: POST /events with the producer's credential (the target's auth
header), the operator routes (/redrive/*) signed with SigV4 as the caller's AWS identity."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from functions.common.names import is_operator_path
from stage_client.target import Target

# The service name API Gateway verifies SigV4 signatures against (API Gateway Developer Guide,
# "Control access to HTTP APIs with IAM authorization": clients sign with Signature Version 4).
EXECUTE_API = "execute-api"

# Statuses worth retrying: the API's own throttling and a busy front end. Anything else is an
# answer the caller must see (a 4xx is the API telling us our input is wrong).
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class ApiError(RuntimeError):
    """The API could not be reached (connection refused, timeout) after the allowed retries."""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any
    elapsed_ms: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


def call_api(
    target: Target,
    method: str,
    path: str,
    *,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
    timeout_s: float = 15.0,
    retries: int = 2,
) -> ApiResponse:
    """One API call; JSON in, JSON (or text) out. Retries only transport errors and 429/5xx-busy.

    urllib rather than requests: requests is no dependency of ours (only Locust's), and one JSON
    request and response need nothing more.
    """
    url = f"{target.api_url}/{path.lstrip('/')}"
    if query:
        params = {k: v for k, v in query.items() if v is not None}
        if params:
            url = f"{url}?{urllib.parse.urlencode(params)}"
    operator = is_operator_path(path)
    # Operators sign as themselves: a producer's API key or bearer token opens no operator route.
    headers = {"accept": "application/json", **({} if operator else target.api_headers())}
    data: bytes | None = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if not url.startswith(("http://", "https://")):
        raise ApiError(f"API URL {target.api_url!r} is not an http(s) URL")
    last_error = ""
    for attempt in range(retries + 1):
        # Signed per attempt: a signature carries its time, and a retry may come minutes later.
        sent = signed(target, method, url, data, headers) if operator else headers
        request = urllib.request.Request(url, data=data, headers=sent, method=method)  # noqa: S310
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            last_error = f"{method} {url}: {error}"
            time.sleep(0.5 * 2**attempt)
            continue
        elapsed_ms = (time.monotonic() - started) * 1000
        if status in RETRYABLE_STATUSES and attempt < retries:
            time.sleep(0.5 * 2**attempt)
            continue
        return ApiResponse(status=status, body=_decode(raw), elapsed_ms=elapsed_ms)
    raise ApiError(last_error or f"{method} {url}: no answer")


def signed(
    target: Target, method: str, url: str, data: bytes | None, headers: dict[str, str]
) -> dict[str, str]:
    """`headers` plus a SigV4 signature of the request for execute-api in the target's region, with
    the caller's AWS credentials (the ordinary chain: environment, profile, assumed role)."""
    credentials = target.credentials()
    if credentials is None:
        raise ApiError(
            f"{method} {url} is an operator route (IAM authorization): it needs AWS credentials to sign "
            "with, and none were found (environment, profile or role)"
        )
    request = AWSRequest(method=method, url=url, data=data, headers=headers)
    SigV4Auth(credentials, EXECUTE_API, target.region).add_auth(request)
    return dict(request.headers.items())


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return text
