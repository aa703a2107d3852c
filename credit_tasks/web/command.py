"""`credit-monitor serve`: the web face under uvicorn, on 127.0.0.1:8000 unless told otherwise.

Light to import (the CLI loads it for its parser): uvicorn and Starlette load when it runs.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
from typing import Any

from ..errors import ConfigError
from ..settings import Settings, load_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def loopback(host: str) -> bool:
    """True for an address only this machine reaches: 127.0.0.0/8, ::1 or localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def refuse_open_bind(host: str, settings: Settings) -> None:
    """A ConfigError when `host` reaches beyond this machine and no basic auth is set."""
    if not loopback(host) and settings.credit_web_auth is None:
        raise ConfigError(
            f"refusing to serve on {host} without CREDIT_WEB_AUTH: set CREDIT_WEB_AUTH="
            "user:password, or bind 127.0.0.1"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    refuse_open_bind(args.host, settings)
    import uvicorn

    from .app import create_app

    app = create_app(settings)
    # what is loaded now lives as long as the process: a full collection, which a scrape of
    # 10,000 keys sets off, need not walk it every time
    gc.freeze()
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"credit-monitor: the page on http://{shown}:{args.port}/ (Ctrl-C stops it)", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
    )
    return 0


def add_parser(sub: Any) -> None:
    """The `serve` subcommand of `credit-monitor`."""
    serve = sub.add_parser("serve", help="the status page, /metrics and /healthz over HTTP")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    serve.add_argument("--log-level", default="warning", help="uvicorn's, default warning")
    serve.set_defaults(func=cmd_serve)
