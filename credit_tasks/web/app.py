"""The web face: a Starlette app, standalone under `credit-monitor serve` or mounted in a host.

It reads Redis through the store and nothing else: it never calls OpenRouter and needs no
API key. Its resources are made on the first request, not at start-up, because a host app
that mounts it does not run a mounted app's lifespan. `CREDIT_WEB_AUTH` puts basic auth on
everything but `/healthz` (and `/metrics` too when `CREDIT_WEB_METRICS_PUBLIC` is true).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import rollup
from ..errors import CreditTasksError, StoreError
from ..settings import Settings, load_settings
from ..store import Store
from . import metrics, page, views

STATIC = Path(__file__).resolve().parent / "static"
OPEN_PATHS = ("/healthz",)
NO_CACHE = {"Cache-Control": "no-store"}


class Web:
    """The app's settings and store, made once on first use and shared by its threads."""

    def __init__(self, settings: Settings | None = None, store: Store | None = None) -> None:
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        with self._lock:
            if self._settings is None:
                self._settings = load_settings()
            return self._settings

    def store(self) -> Store:
        settings = self.settings
        with self._lock:
            if self._store is None:
                self._store = Store.from_settings(settings)
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _route_path(scope: Scope) -> str:
    """The path inside this app, whatever it is mounted under."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


class BasicAuth:
    """HTTP basic auth in front of the app, except for the paths that stay open."""

    def __init__(self, app: ASGIApp, web: Web) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            allowed = scope["type"] != "http" or self._allowed(scope)
        except CreditTasksError as exc:  # a bad setting, said in one line
            await PlainTextResponse(str(exc), status_code=500)(scope, receive, send)
            return
        if allowed:
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "Sign in with the user and password of CREDIT_WEB_AUTH.",
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="credit-monitor"'},
        )
        await response(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        settings = self.web.settings
        expected = settings.credit_web_auth
        path = _route_path(scope)
        if expected is None or path in OPEN_PATHS:
            return True
        if path == "/metrics" and settings.credit_web_metrics_public:
            return True
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return False
        return secrets.compare_digest(given, expected.get_secret_value().encode())


def _bad(exc: views.BadQuery) -> PlainTextResponse:
    return PlainTextResponse(str(exc), status_code=400)


def _unavailable(exc: StoreError, json: bool) -> Response:
    if json:
        return JSONResponse({"error": str(exc)}, status_code=503, headers=NO_CACHE)
    return HTMLResponse(page.error_page(str(exc)), status_code=503, headers=NO_CACHE)


def create_app(settings: Settings | None = None, store: Store | None = None) -> Starlette:
    """The web face; settings from the environment and a store of its own unless given."""
    web = Web(settings, store)

    def home(request: Request) -> Response:
        try:
            chart_range = views.range_of(request.query_params.get("range"))
            number = views.page_of(request.query_params.get("page"))
        except views.BadQuery as exc:
            return _bad(exc)
        try:
            data = views.read_page(web.store(), web.settings, chart_range, number)
        except StoreError as exc:
            return _unavailable(exc, json=False)
        return HTMLResponse(page.render(data), headers=NO_CACHE)

    def status(request: Request) -> Response:
        try:
            return JSONResponse(web.store().overview(5), headers=NO_CACHE)
        except StoreError as exc:
            return _unavailable(exc, json=True)

    def history(request: Request) -> Response:
        try:
            hours = views.hours_of(request.query_params.get("hours"))
        except views.BadQuery as exc:
            return _bad(exc)
        end = datetime.now(UTC)
        try:
            width_s, buckets = web.store().buckets(end - timedelta(hours=hours), end)
        except StoreError as exc:
            return _unavailable(exc, json=True)
        return JSONResponse(rollup.report(hours, width_s, buckets), headers=NO_CACHE)

    def healthz(request: Request) -> Response:
        try:
            monitoring = web.store().monitoring_status()
        except StoreError as exc:
            body = {"status": "redis unreachable", "reason": str(exc)}
            return JSONResponse(body, status_code=503, headers=NO_CACHE)
        verdict = views.health(monitoring, web.settings.check_interval_s, datetime.now(UTC))
        return JSONResponse(verdict.body, status_code=200 if verdict.ok else 503, headers=NO_CACHE)

    registry = metrics.registry(web.store)

    def scrape(request: Request) -> Response:
        return Response(metrics.exposition(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield  # a mounted app never gets here: the store is made on first use instead
        web.close()

    def config_error(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(str(exc), status_code=500)

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/healthz", healthz),
            Route("/metrics", scrape),
            Route("/api/status", status),
            Route("/api/history", history),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={CreditTasksError: config_error},
        lifespan=lifespan,
    )
    app.add_middleware(BasicAuth, web=web)
    app.state.web = web
    return app
