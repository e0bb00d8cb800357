"""An execute-api request reaches the API in the account that owns it, whoever calls.

On AWS the API id in the host (`<api-id>.execute-api.<region>.amazonaws.com`) names the API; the
caller's account matters only to IAM authorization (API Gateway Developer Guide, "Invoking a REST
API" / "Invoking an HTTP API": the invoke URL is the API's). ministack looks the API up "within the
ambient account", the account of the request's credentials, so an unsigned call (a producer with an
API key) reaches only APIs of the default account: an API deployed in another local account (the
rehearsal's dev 111111111111) answered 404. When the caller's account holds no API of that id, the
request runs in the API's own account, as its integrations and stages do on AWS.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ministack import app
from ministack.core.responses import get_account_id, set_request_account_id
from ministack.services import apigateway, apigateway_v1

from .engine_hooks import require

LOG = logging.getLogger("lab-engine")


def owning_account(api_id: str) -> str | None:
    """The account holding an HTTP/WebSocket or REST API of this id, in any account."""
    for stored in (apigateway._apis, apigateway_v1._rest_apis):
        for (account, _region, stored_id), _api in stored.all_items():
            if stored_id == api_id:
                return str(account)
    return None


def in_owning_account(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handle(host: str, path: str, *args: Any, **kwargs: Any) -> Any:
        parsed = app._parse_execute_api_url(host, path)
        if parsed is not None:
            api_id = parsed[0]
            if apigateway.find_api_scope(api_id) is None and apigateway_v1.find_api_scope(api_id) is None:
                owner = owning_account(api_id)
                if owner is not None and owner != get_account_id():
                    # A 12-digit access key id is taken as the account itself.
                    set_request_account_id(owner)
        return await original(host, path, *args, **kwargs)

    return handle


def install() -> None:
    require(app, "_handle_execute_api_request", "_parse_execute_api_url")
    require(apigateway, "find_api_scope")
    require(apigateway_v1, "find_api_scope")
    for module, name in ((apigateway, "_apis"), (apigateway_v1, "_rest_apis")):
        if not callable(getattr(getattr(module, name, None), "all_items", None)):
            raise SystemExit(f"engine_patches: ministack has no {module.__name__}.{name}: update the lab")
    app._handle_execute_api_request = in_owning_account(app._handle_execute_api_request)
    LOG.info("installed: execute-api requests reach the API in its own account")
