"""Verifies a request's SigV4 signature as API Gateway does for routes with IAM authorization: the
test stubs of the API (unit and template tiers) answer an operator route only when it is signed."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256 "
EXECUTE_API = "execute-api"


def valid_signature(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
    region: str,
) -> bool:
    """Recompute the signature over the headers the request says it signed, for execute-api in
    `region`, with `credentials` (the caller's secret), and compare. `headers`: the request's
    headers by lowercase name."""
    authorization = headers.get("authorization") or ""
    if not authorization.startswith(ALGORITHM):
        return False
    fields = dict(part.strip().split("=", 1) for part in authorization[len(ALGORITHM) :].split(","))
    key, _date, signed_region, service, _ = fields["Credential"].split("/")
    if (key, signed_region, service) != (credentials.access_key, region, EXECUTE_API):
        return False
    signed = fields["SignedHeaders"].split(";")
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in signed})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(credentials, service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return hmac.compare_digest(expected, fields["Signature"])
