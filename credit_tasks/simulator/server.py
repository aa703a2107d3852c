"""The simulator's HTTP server: a real socket, one thread per connection, and its front object.

`Simulator` is the account (see account.py) served over HTTP, with a fault queue in front of
the API routes and a request log that never holds a key.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

from . import routes
from .account import Account
from .faults import API_PREFIX, Fault, FaultQueue
from .routes import Response, Switches


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up are routine here; only real bugs are worth a trace.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openrouter-simulator"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sim._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sim._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the simulator keeps its own request log, which never holds keys

    def do_GET(self) -> None:
        self._dispatch(self.command)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _dispatch(self, method: str) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        length = self.headers.get("Content-Length", "0")
        raw = self.rfile.read(int(length)) if length.isdigit() else b""
        if url.path == "/_sim" or url.path.startswith("/_sim/"):
            self._send(routes.control(sim, method, url.path, raw))
            return
        auth = self.headers.get("Authorization")
        fault = sim._begin(method, url.path, auth)
        latency_s = sim.switches.latency_ms / 1000
        if latency_s > 0:
            sim._stopping.wait(latency_s)  # each connection has its own thread: they overlap

        def normal() -> Response:
            return routes.answer(sim, method, url.path, url.query, auth)

        if fault is None:
            self._send(normal())
            return
        if fault.kind == "hang":
            sim._stopping.wait(fault.delay_s if fault.delay_s is not None else 60.0)
            self.close_connection = True
            return
        if fault.delay_s:
            sim._stopping.wait(fault.delay_s)
        if fault.kind == "close":
            self.close_connection = True
        elif fault.kind == "reset":
            self._reset(normal())
        else:
            self._send(routes.fault_response(fault) or normal())

    def _headers(self, resp: Response, length: int) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(length))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, resp: Response) -> None:
        self._headers(resp, len(resp.body))
        self.wfile.write(resp.body)

    def _reset(self, resp: Response) -> None:
        self._headers(resp, len(resp.body) + 16)
        self.wfile.write(resp.body[: len(resp.body) // 2])
        self.close_connection = True
        # Linger 0 makes close() send RST instead of FIN; rfile holds a reference to the socket,
        # so it has to be closed first for close() to take effect now.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()


class Simulator(Account):
    """An OpenRouter API simulator serving on a real socket, bound at construction."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self.host = host
        self.switches = Switches()
        self._faults = FaultQueue()
        self._counts: dict[str, int] = {}
        self._log: deque[dict[str, str]] = deque(maxlen=10_000)
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._server = _Server((host, port), self)
        self.port: int = self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        if self._thread is None:
            # A short poll interval keeps stop() quick; the server loop is otherwise idle.
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="openrouter-sim", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()  # releases hung and delayed handlers
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        with self.lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive connections would otherwise outlive the server
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self.lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # -- behaviour, faults and what was asked ----------------------------------------------
    def reset(self) -> None:
        """Back to an empty account that answers normally, with no faults and no log."""
        with self.lock:
            super().reset()
            self.switches = Switches()
            self._faults.clear()
            self._counts = {}
            self._log.clear()

    def configure(
        self,
        *,
        legacy: bool | None = None,
        minimal_shape: bool | None = None,
        credits_zeros_for_ordinary: bool | None = None,
        latency_ms: float | None = None,
        no_workspaces: bool | None = None,
    ) -> None:
        """Switch older behaviours on or off, or set the latency; None leaves it as it is."""
        if latency_ms is not None and not 0 <= float(latency_ms) <= 60_000:
            raise ValueError("latency_ms must be between 0 and 60000")
        with self.lock:
            s = self.switches
            if latency_ms is not None:
                s.latency_ms = float(latency_ms)
            s.legacy = s.legacy if legacy is None else legacy
            s.minimal_shape = s.minimal_shape if minimal_shape is None else minimal_shape
            if credits_zeros_for_ordinary is not None:
                s.credits_zeros_for_ordinary = credits_zeros_for_ordinary
            if no_workspaces is not None:
                s.no_workspaces = no_workspaces

    def inject(self, kind: str, **options: Any) -> None:
        """Queue a fault for the next request(s) on `path` (after /api/v1), or on any path.

        The options are those of `FaultQueue.inject`: path, times, status, retry_after, body,
        content_type, data, delay_s, message, reset_in_s.
        """
        self._faults.inject(kind, **options)

    def clear_faults(self) -> None:
        self._faults.clear()

    def requests(self) -> dict[str, int]:
        """Request counts per path after /api/v1 ("/keys/{hash}" for single keys)."""
        with self.lock:
            return dict(self._counts)

    def request_log(self) -> list[dict[str, str]]:
        """Recent requests: method, path and key kind (management/ordinary/unknown/none)."""
        with self.lock:
            return list(self._log)

    def _begin(self, method: str, path: str, auth: str | None) -> Fault | None:
        """Log an API request and take the first queued fault that matches it."""
        sub = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else None
        logged = "other:" + path if sub is None else sub
        if sub is not None and sub.startswith("/keys/") and len(sub) > 6:
            logged = "/keys/{hash}"
        bearer = routes.token(auth)
        with self.lock:
            entry = self.by_secret(bearer) if bearer else None
            kind = (
                "none"
                if bearer is None
                else "unknown"
                if entry is None
                else "management"
                if entry.management
                else "ordinary"
            )
            self._counts[logged] = self._counts.get(logged, 0) + 1
            self._log.append({"method": method, "path": logged, "key_kind": kind})
        return None if sub is None else self._faults.take(sub, logged)
