"""An HTTP API route with AuthorizationType AWS_IAM accepts only a SigV4-signed request.

What ministack 1.5.33 does on such a route (pinned by tests/local/engine/test_execute_api_iam.py):
no Authorization header -> 403 {"message": "Forbidden"}; a SigV4 signature is verified and its
principal must be allowed execute-api:Invoke on the route's ARN (else 403 AccessDeniedException,
or 403 InvalidSignatureException for a bad signature) - as AWS does. But an Authorization header
that is not SigV4 at all (a producer's `Bearer <jwt>`, say) is let through to the integration.
What AWS does: "When IAM authorization is enabled, clients must use Signature Version 4 (SigV4) to
sign their requests with AWS credentials. API Gateway invokes your API route only if the client has
execute-api permission for the route" (API Gateway developer guide, "Control access to HTTP APIs
with IAM authorization",
docs.aws.amazon.com/apigateway/latest/developerguide/http-api-access-control-iam.html);
an unsigned or wrongly signed request gets 403 ("How do I troubleshoot signature mismatch errors...",
repost.aws/knowledge-center/api-gateway-iam-sigv4-mismatch). So such a request is refused here with
the HTTP API's 403 {"message":"Forbidden"} before the integration runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ministack import app
from ministack.services import apigateway

from .engine_hooks import LOG, require

FORBIDDEN = (403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}')
SIGV4_HEADER_PREFIX = "AWS4-HMAC-SHA256"
SIGV4_QUERY_PARAMETER = "X-Amz-Signature"


def signed_with_sigv4(headers: dict[str, Any], query_params: dict[str, Any]) -> bool:
    authorization = str(headers.get("authorization", ""))
    return authorization.startswith(SIGV4_HEADER_PREFIX) or (
        not authorization and SIGV4_QUERY_PARAMETER in (query_params or {})
    )


def iam_routes_require_sigv4(original: Callable[..., Any]) -> Callable[..., Any]:
    def enforce(  # noqa: PLR0917 - the engine's own signature
        api_id: str,
        stage: str,
        method: str,
        execute_path: str,
        headers: dict[str, Any],
        query_params: dict[str, Any],
        **kwargs: Any,
    ) -> Any:
        denied = original(api_id, stage, method, execute_path, headers, query_params, **kwargs)
        if denied:
            return denied
        if apigateway.find_api_scope(api_id) is None:
            return None  # not an HTTP/WebSocket API (REST APIs refuse it themselves)
        route_type = apigateway.route_authorization_type(api_id, stage, method, execute_path)
        if (
            route_type == "AWS_IAM"
            and headers.get("authorization")
            and not signed_with_sigv4(headers, query_params)
        ):
            LOG.warning(
                "execute-api %s %s %s: AWS_IAM route refused a request not signed with SigV4",
                api_id,
                method,
                execute_path,
            )
            return FORBIDDEN
        return None

    return enforce


def install() -> None:
    require(app, "_enforce_execute_api")
    require(apigateway, "find_api_scope", "route_authorization_type")
    app._enforce_execute_api = iam_routes_require_sigv4(app._enforce_execute_api)
    LOG.info("installed: AWS_IAM routes of HTTP APIs require SigV4")
