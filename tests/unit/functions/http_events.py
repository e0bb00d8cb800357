"""HTTP API (payload format 2.0) request events for handler tests."""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import urlencode


def http_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    base64_encode: bool = False,
) -> dict[str, Any]:
    encoded_body: str | None
    if body is None:
        encoded_body = None
    elif base64_encode or isinstance(body, bytes):
        raw = body if isinstance(body, bytes) else body.encode("utf-8")
        encoded_body = base64.b64encode(raw).decode("ascii")
        base64_encode = True
    else:
        encoded_body = body
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "queryStringParameters": query,
        "headers": {name.lower(): value for name, value in (headers or {}).items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "28/Nov/2026:08:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": encoded_body,
        "isBase64Encoded": base64_encode,
    }


JSON_HEADERS = {"content-type": "application/json"}
