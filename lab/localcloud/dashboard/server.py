"""The page's server on 127.0.0.1: the page and its static files (uPlot from node_modules, never a
CDN), and two JSON routes over DashboardService, so the browser needs no AWS credentials and can
reach nothing but these read-only answers.

Hand-written on the standard library's http.server: five GET routes on loopback do not justify a
web framework in the pinned dependencies, and the standard server stays in the lab's own venv.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lab.localcloud.dashboard.service import DashboardNotFound, DashboardService, UpstreamError
from lab.localcloud.dashboard.timerange import TimeRangeError, time_range

STATIC_DIR = Path(__file__).with_name("static")
UPLOT_DIST = Path(__file__).resolve().parents[3] / "node_modules" / "uplot" / "dist"
# The only files served: a fixed map, so no request path ever reaches the file system.
STATIC_FILES = {
    "/": (STATIC_DIR / "index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": (STATIC_DIR / "dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": (STATIC_DIR / "dashboard.css", "text/css; charset=utf-8"),
    "/static/uPlot.iife.min.js": (UPLOT_DIST / "uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "/static/uPlot.min.css": (UPLOT_DIST / "uPlot.min.css", "text/css; charset=utf-8"),
}
DATA_PARAMETERS = {"start", "end"}


def missing_static_files() -> list[Path]:
    return [path for path, _ in STATIC_FILES.values() if not path.is_file()]


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, service: DashboardService, port: int = 0) -> None:
        self.service = service
        super().__init__(("127.0.0.1", port), DashboardHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._host_allowed():
            # A page of another site that rebinds its DNS name to 127.0.0.1 sends its own Host.
            self._json(
                HTTPStatus.FORBIDDEN, {"error": "forbidden_host", "message": "only 127.0.0.1/localhost"}
            )
            return
        if url.path in STATIC_FILES:
            self._static(*STATIC_FILES[url.path])
            return
        routes = {"/api/dashboard": self._dashboard, "/api/data": self._data, "/healthz": self._health}
        route = routes.get(url.path)
        if route is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no route {url.path}"})
            return
        try:
            route(parse_qs(url.query, keep_blank_values=True))
        except DashboardNotFound as error:
            self._json(
                HTTPStatus.NOT_FOUND,
                {"error": "dashboard_not_found", "message": f"{error}: deploy the stage (make lab)"},
            )
        except UpstreamError as error:
            self._json(HTTPStatus.BAD_GATEWAY, {"error": "local_cloud_unavailable", "message": str(error)})

    def _refuse(self) -> None:
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method_not_allowed", "message": "GET only"})

    # Every other method gets a JSON 405 (the base class would answer 501 with an HTML page).
    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _host_allowed(self) -> bool:
        host = (self.headers.get("Host") or "").lower()
        return host in (f"127.0.0.1:{self.server.port}", f"localhost:{self.server.port}")

    def _health(self, _query: dict[str, list[str]]) -> None:
        self._json(HTTPStatus.OK, {"ok": True, "dashboard": self.server.service.name})

    def _dashboard(self, query: dict[str, list[str]]) -> None:
        if query:
            self._json(
                HTTPStatus.BAD_REQUEST, {"error": "unknown_parameter", "message": "takes no parameters"}
            )
            return
        self._json(HTTPStatus.OK, self.server.service.describe())

    def _data(self, query: dict[str, list[str]]) -> None:
        unknown = sorted(set(query) - DATA_PARAMETERS)
        repeated = sorted(name for name, values in query.items() if len(values) > 1)
        if unknown or repeated:
            message = f"unknown parameters {unknown}" if unknown else f"repeated parameters {repeated}"
            self._json(HTTPStatus.BAD_REQUEST, {"error": "bad_parameter", "message": message})
            return
        try:
            window = time_range(
                query.get("start", [""])[0] or None, query.get("end", [""])[0] or None, now=datetime.now(UTC)
            )
        except TimeRangeError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "bad_time_range", "message": str(error)})
            return
        self._json(HTTPStatus.OK, self.server.service.refresh(window))

    def _static(self, path: Path, content_type: str) -> None:
        try:
            content = path.read_bytes()
        except OSError:
            self._json(
                HTTPStatus.NOT_FOUND,
                {"error": "not_installed", "message": f"{path.name} is missing: run npm ci (make lab does)"},
            )
            return
        self._send(HTTPStatus.OK, content, content_type)

    def _json(self, status: HTTPStatus, data: Any) -> None:
        self._send(status, json.dumps(data, default=str).encode(), "application/json")

    def _send(self, status: HTTPStatus, content: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Every refresh is a request: log only what went wrong.
        if str(code).startswith(("4", "5")):
            super().log_request(code, size)
