"""The web face of credit_tasks: a status page, `/metrics`, `/healthz` and a JSON API.

`credit_tasks.web.app` is an ASGI app (Starlette) built from the environment's settings on
its first request, so a host FastAPI app can `app.mount("/credits", credit_tasks.web.app)`;
`create_app(settings, store)` builds one from given ones. Loading this package is light:
Starlette and prometheus_client load when `app` or `create_app` is first asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "app":
        from .app import create_app

        app = create_app()
        globals()["app"] = app  # one app per process, however often it is asked for
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
