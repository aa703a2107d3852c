"""OpenRouter API simulator for tests and demos.

A real HTTP server (standard library only) that answers /api/v1/key, /auth/key, /credits, /keys
and /keys/{hash} with OpenRouter's response shapes, with continuous spend, auto top-up and
fault injection (error statuses, bad bodies, resets, hangs). Drive it from Python or over HTTP
under /_sim/. It imports nothing from the rest of credit_tasks, so it cannot share a client bug.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/api/v1"
PAGE_SIZE = 100
DEFAULT_API_KEY = "sk-or-v1-sim-ordinary"
DEFAULT_MANAGEMENT_KEY = "sk-or-v1-sim-management"
CREATOR_USER_ID = "user_2simu1atorXXXXXXXXXXXXXXXX"
WORKSPACE_ID = "5f1d7c2e-0b6a-4c1e-9a43-51a7e0c0d001"  # the default workspace
FAULT_KINDS = frozenset(
    {"status", "error_in_200", "body", "data", "delay", "reset", "hang", "close"}
)
LIMIT_RESETS: tuple[str | None, ...] = (None, "daily", "weekly", "monthly")
ONLY_MANAGEMENT = "Only management keys can perform this operation"
MESSAGES = {
    400: "Bad request",
    401: "User not found.",
    402: "Insufficient credits",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request timeout",
    429: "Rate limit exceeded",
    500: "Internal Server Error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
}
_KEY_FIELDS = frozenset(
    {"name", "limit", "usage", "limit_reset", "disabled", "management", "created_at"}
)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _label(key: str) -> str:
    # OpenRouter shows the first 12 characters ("sk-or-v1-" + 3) and the last 3.
    return f"{key[:12]}...{key[-3:]}" if len(key) > 18 else f"{key[:3]}..."


@dataclass
class _Key:
    secret: str
    hash: str
    name: str
    limit: float | None
    usage: float
    limit_reset: str | None
    disabled: bool
    management: bool
    created_at: str
    updated_at: str
    seq: int

    @property
    def remaining(self) -> float | None:
        # negative once the key is overspent, as OpenRouter reports it
        return None if self.limit is None else self.limit - self.usage

    def sort_key(self) -> tuple[datetime, int]:
        return (_parse_time(self.created_at), self.seq)

    def item(self) -> dict[str, Any]:
        """The `/keys` item shape."""
        u = self.usage
        return {
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "creator_user_id": CREATOR_USER_ID,
            "workspace_id": WORKSPACE_ID,
            "hash": self.hash,
            "label": _label(self.secret),
            "name": self.name,
            "disabled": self.disabled,
            "limit": self.limit,
            "limit_remaining": self.remaining,
            "limit_reset": self.limit_reset,
            "include_byok_in_limit": False,
            "usage": u,
            "usage_daily": u,
            "usage_weekly": u,
            "usage_monthly": u,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
        }


@dataclass
class _Fault:
    kind: str
    path: str | None
    times: int
    status: int | None
    retry_after: float | None
    body: str | None
    content_type: str | None
    data: object
    delay_s: float | None
    message: str | None


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> _Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _Response(status, body, headers=headers or {})


def _error(
    status: int, message: str | None = None, headers: dict[str, str] | None = None
) -> _Response:
    text = message or MESSAGES.get(status, "Error")
    return _json(status, {"error": {"code": status, "message": text}}, headers)


def _fault_response(fault: _Fault) -> _Response | None:
    """The canned answer of a fault, or None when the normal answer should be sent."""
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if fault.kind == "status":
        status = fault.status or 500
        if status == 429:
            headers.update({"X-RateLimit-Limit": "40", "X-RateLimit-Remaining": "0"})
        return _error(status, fault.message, headers)
    if fault.kind == "error_in_200":
        code = fault.status or 500
        message = fault.message or MESSAGES.get(code, "Error")
        return _json(200, {"error": {"code": code, "message": message}}, headers)
    if fault.kind == "body":
        raw = (fault.body or "").encode()
        return _Response(200, raw, fault.content_type or "application/json", headers)
    if fault.kind == "data":
        return _json(200, {"data": fault.data}, headers)
    return None


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
            self._send(sim._control(method, url.path, raw))
            return
        auth = self.headers.get("Authorization")
        fault = sim._begin(method, url.path, auth)
        if fault is None:
            self._send(sim._answer(method, url.path, url.query, auth))
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
            self._reset(sim._answer(method, url.path, url.query, auth))
        else:
            self._send(_fault_response(fault) or sim._answer(method, url.path, url.query, auth))

    def _headers(self, resp: _Response, length: int) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(length))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, resp: _Response) -> None:
        self._headers(resp, len(resp.body))
        self.wfile.write(resp.body)

    def _reset(self, resp: _Response) -> None:
        self._headers(resp, len(resp.body) + 16)
        self.wfile.write(resp.body[: len(resp.body) // 2])
        self.close_connection = True
        # Linger 0 makes close() send RST instead of FIN; rfile holds a reference to the socket,
        # so it has to be closed first for close() to take effect now.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()


class Simulator:
    """An OpenRouter API simulator serving on a real socket, bound at construction."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._server = _Server((host, port), self)
        self.port: int = self._server.server_address[1]
        self.reset()

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
        with self._lock:
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
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # -- state -----------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._credits = 0.0
            self._usage = 0.0
            self._by_secret: dict[str, _Key] = {}
            self._by_hash: dict[str, _Key] = {}
            self._order: tuple[list[_Key], list[_Key]] | None = None
            self._seq = 0
            self._spend_hash: str | None = None
            self._spend_rate = 0.0
            self._last_accrual = time.monotonic()
            self._topup_below: float | None = None
            self._topup_usd = 0.0
            self._legacy = self._minimal = self._zeros = False
            self._raw_items: list[object] = []
            self._faults: list[_Fault] = []
            self._counts: dict[str, int] = {}
            self._log: deque[dict[str, str]] = deque(maxlen=10_000)

    def set_account(self, *, total_credits: float, total_usage: float = 0.0) -> None:
        with self._lock:
            self._accrue()
            self._credits, self._usage = float(total_credits), float(total_usage)

    def add_key(
        self,
        key: str,
        *,
        name: str = "Default",
        limit: float | None = None,
        usage: float = 0.0,
        limit_reset: str | None = None,
        disabled: bool = False,
        management: bool = False,
        created_at: str | None = None,
    ) -> str:
        """Register (or replace) a key; returns its hash."""
        if not key:
            raise ValueError("key must be a non-empty string")
        if limit_reset not in LIMIT_RESETS:
            raise ValueError(f"limit_reset must be one of {LIMIT_RESETS}")
        stamp = created_at or _now_iso()
        _parse_time(stamp)  # reject bad timestamps now, not on the next /keys request
        with self._lock:
            self._accrue()
            self._seq += 1
            entry = _Key(
                key,
                hashlib.sha256(key.encode()).hexdigest(),
                name,
                None if limit is None else float(limit),
                float(usage),
                limit_reset,
                bool(disabled),
                bool(management),
                stamp,
                stamp,
                self._seq,
            )
            self._by_secret[key] = self._by_hash[entry.hash] = entry
            self._order = None
            return entry.hash

    def add_fleet(self, count: int, *, prefix: str = "fleet") -> None:
        """Add `count` capped keys with varied limits and usages, some nearly exhausted."""
        base = datetime.now(UTC)
        limits = (5.0, 10.0, 25.0, 50.0, 100.0)
        for i in range(count):
            limit = limits[i % len(limits)]
            fraction = (i * 37 % 100) / 100  # spreads usage over 0-99 % of the limit
            self.add_key(
                "sk-or-v1-" + hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest(),
                name=f"{prefix}-{i:05d}",
                limit=limit,
                usage=round(limit * fraction, 4),
                limit_reset=LIMIT_RESETS[i % 4],
                disabled=i % 50 == 49,
                created_at=(base - timedelta(minutes=i + 1)).isoformat(),
            )

    def update_key(self, key_or_hash: str, **fields: Any) -> None:
        unknown = set(fields) - _KEY_FIELDS
        if unknown:
            raise ValueError(f"unknown key fields: {sorted(unknown)}")
        if fields.get("limit_reset") not in LIMIT_RESETS:
            raise ValueError(f"limit_reset must be one of {LIMIT_RESETS}")
        if "created_at" in fields:
            _parse_time(fields["created_at"])
        with self._lock:
            self._accrue()
            entry = self._find(key_or_hash)
            for name, value in fields.items():
                if name in ("limit", "usage") and value is not None:
                    value = float(value)
                setattr(entry, name, value)
            entry.updated_at = _now_iso()
            self._order = None

    def add_raw_key_item(self, item: object) -> None:
        """List `item` as it is in /keys, before every key: a server sending what cannot be read."""
        with self._lock:
            self._raw_items.append(item)

    def reset_key_usage(self, key_or_hash: str) -> None:
        """What a daily/weekly/monthly limit reset does: the key's usage back to 0."""
        self.update_key(key_or_hash, usage=0.0)

    def set_spend(self, *, key: str | None, usd_per_hour: float) -> None:
        """Spend continuously; key=None charges the account only."""
        with self._lock:
            self._accrue()
            self._spend_hash = None if key is None else self._find(key).hash
            self._spend_rate = float(usd_per_hour)

    def set_topup(self, *, below_usd: float | None, topup_usd: float = 0.0) -> None:
        with self._lock:
            self._accrue()
            self._topup_below = None if below_usd is None else float(below_usd)
            self._topup_usd = float(topup_usd)

    def configure(
        self,
        *,
        legacy: bool | None = None,
        minimal_shape: bool | None = None,
        credits_zeros_for_ordinary: bool | None = None,
    ) -> None:
        with self._lock:
            self._legacy = self._legacy if legacy is None else legacy
            self._minimal = self._minimal if minimal_shape is None else minimal_shape
            self._zeros = (
                self._zeros if credits_zeros_for_ordinary is None else credits_zeros_for_ordinary
            )

    def inject(
        self,
        kind: str,
        *,
        path: str | None = None,
        times: int = 1,
        status: int | None = None,
        retry_after: float | None = None,
        body: str | None = None,
        content_type: str | None = None,
        data: object = None,
        delay_s: float | None = None,
        message: str | None = None,
    ) -> None:
        """Queue a fault for the next request(s) on `path` (after /api/v1), or on any path."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}")
        if kind == "status" and status is None:
            raise ValueError("a status fault needs a status")
        if times < 1:
            raise ValueError("times must be at least 1")
        if path is not None:
            path = "/" + path.removeprefix(API_PREFIX).lstrip("/")
        with self._lock:
            self._faults.append(
                _Fault(
                    kind,
                    path,
                    times,
                    status,
                    retry_after,
                    body,
                    content_type,
                    data,
                    delay_s,
                    message,
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests(self) -> dict[str, int]:
        """Request counts per path after /api/v1 ("/keys/{hash}" for single keys)."""
        with self._lock:
            return dict(self._counts)

    def request_log(self) -> list[dict[str, str]]:
        """Recent requests: method, path and key kind (management/ordinary/unknown/none)."""
        with self._lock:
            return list(self._log)

    def state(self) -> dict[str, Any]:
        """Account and keys without the key strings."""
        with self._lock:
            self._accrue()
            keys = [
                {
                    "hash": k.hash,
                    "name": k.name,
                    "label": _label(k.secret),
                    "limit": k.limit,
                    "usage": k.usage,
                    "limit_remaining": k.remaining,
                    "disabled": k.disabled,
                    "management": k.management,
                }
                for k in self._by_hash.values()
            ]
            return {
                "total_credits": self._credits,
                "total_usage": self._usage,
                "balance": self._credits - self._usage,
                "keys": keys,
            }

    # -- internals (all called with or taking the lock) -------------------------------------
    def _find(self, key_or_hash: str) -> _Key:
        entry = self._by_secret.get(key_or_hash) or self._by_hash.get(key_or_hash)
        if entry is None:
            raise KeyError("no such key")  # never echo the key string
        return entry

    def _accrue(self) -> None:
        now = time.monotonic()
        amount = self._spend_rate * (now - self._last_accrual) / 3600.0
        self._last_accrual = now
        entry = self._by_hash.get(self._spend_hash) if self._spend_hash else None
        if entry is not None:
            # A disabled or capped-out key cannot spend, as on OpenRouter.
            room = 0.0 if entry.disabled else entry.remaining
            amount = amount if room is None else min(amount, max(room, 0.0))
            entry.usage += amount
        self._usage += amount
        if self._topup_below is not None and self._credits - self._usage < self._topup_below:
            self._credits += self._topup_usd

    def _ordered(self, include_disabled: bool) -> list[_Key]:
        # Sorted once per change of the key set, so paging 10,000 keys only slices.
        if self._order is None:
            api_keys = [k for k in self._by_hash.values() if not k.management]
            everything = sorted(api_keys, key=_Key.sort_key, reverse=True)
            self._order = (everything, [k for k in everything if not k.disabled])
        return self._order[0] if include_disabled else self._order[1]

    @staticmethod
    def _token(auth: str | None) -> str | None:
        scheme, _, token = (auth or "").partition(" ")
        return (token.strip() or None) if scheme.lower() == "bearer" else None

    def _begin(self, method: str, path: str, auth: str | None) -> _Fault | None:
        """Log an API request and take the first queued fault that matches it."""
        sub = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else None
        logged = "other:" + path if sub is None else sub
        if sub is not None and sub.startswith("/keys/") and len(sub) > 6:
            logged = "/keys/{hash}"
        token = self._token(auth)
        with self._lock:
            entry = self._by_secret.get(token) if token else None
            kind = (
                "none"
                if token is None
                else "unknown"
                if entry is None
                else "management"
                if entry.management
                else "ordinary"
            )
            self._counts[logged] = self._counts.get(logged, 0) + 1
            self._log.append({"method": method, "path": logged, "key_kind": kind})
            for index, fault in enumerate(self._faults):
                if sub is not None and fault.path in (None, sub, logged):
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[index]
                    return fault
        return None

    def _key_info(self, k: _Key) -> dict[str, Any]:
        free = self._credits <= 0
        if self._minimal:
            return {
                "label": _label(k.secret),
                "limit": k.limit,
                "usage": k.usage,
                "limit_remaining": k.remaining,
                "is_free_tier": free,
                "rate_limit": {"requests": 40, "interval": "10s"},
            }
        u = k.usage
        return {
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_monthly": 0,
            "byok_usage_weekly": 0,
            "creator_user_id": CREATOR_USER_ID,
            "expires_at": None,
            "include_byok_in_limit": False,
            "is_free_tier": free,
            "is_management_key": k.management,
            "is_provisioning_key": k.management,
            "label": _label(k.secret),
            "limit": k.limit,
            "limit_remaining": k.remaining,
            "limit_reset": k.limit_reset,
            "rate_limit": {
                "interval": "1h",
                "note": "This field is deprecated and safe to ignore.",
                "requests": 1000,
            },
            "usage": u,
            "usage_daily": u,
            "usage_monthly": u,
            "usage_weekly": u,
        }

    def _answer(self, method: str, path: str, query: str, auth: str | None) -> _Response:
        sub = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else ""
        is_single = sub.startswith("/keys/") and len(sub) > 6 and "/" not in sub[6:]
        if sub not in ("/key", "/auth/key", "/credits", "/keys") and not is_single:
            return _error(404)
        if sub == "/key" and self._legacy:
            return _error(404)
        if method != "GET":
            return _error(405)
        token = self._token(auth)
        if token is None:
            return _error(401, "No auth credentials found")
        with self._lock:
            self._accrue()
            caller = self._by_secret.get(token)
            if caller is None or caller.disabled:
                return _error(401, "User not found.")
            if sub in ("/key", "/auth/key"):
                return _json(200, {"data": self._key_info(caller)})
            if sub == "/credits" and not caller.management and self._zeros:
                return _json(200, {"data": {"total_credits": 0, "total_usage": 0}})
            if not caller.management:
                return _error(403, ONLY_MANAGEMENT)
            if sub == "/credits":
                return _json(
                    200, {"data": {"total_credits": self._credits, "total_usage": self._usage}}
                )
            if is_single:
                target = self._by_hash.get(sub[6:])
                if target is None or target.management:
                    return _error(404, "Key not found")
                return _json(200, {"data": target.item()})
            params = parse_qs(query)
            try:
                offset = int(params.get("offset", ["0"])[0])
            except ValueError:
                return _error(400, "Invalid offset")
            if offset < 0:
                return _error(400, "Invalid offset")
            include = params.get("include_disabled", ["false"])[0].lower() == "true"
            raw = self._raw_items[offset : offset + PAGE_SIZE]
            start = max(offset - len(self._raw_items), 0)
            page = self._ordered(include)[start : start + PAGE_SIZE - len(raw)]
            return _json(200, {"data": [*raw, *(k.item() for k in page)]})

    def _control(self, method: str, path: str, raw: bytes) -> _Response:
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], object]] = {
            ("POST", "/_sim/account"): lambda a: self.set_account(**a),
            ("POST", "/_sim/keys"): lambda a: {"hash": self.add_key(**a)},
            ("PATCH", "/_sim/keys"): lambda a: self.update_key(**a),
            ("POST", "/_sim/keys/reset_usage"): lambda a: self.reset_key_usage(**a),
            ("POST", "/_sim/keys/raw"): lambda a: self.add_raw_key_item(**a),
            ("POST", "/_sim/fleet"): lambda a: self.add_fleet(**a),
            ("POST", "/_sim/spend"): lambda a: self.set_spend(**a),
            ("POST", "/_sim/topup"): lambda a: self.set_topup(**a),
            ("POST", "/_sim/config"): lambda a: self.configure(**a),
            ("POST", "/_sim/faults"): lambda a: self.inject(**a),
            ("DELETE", "/_sim/faults"): lambda a: self.clear_faults(),
            ("GET", "/_sim/requests"): lambda a: {
                "requests": self.requests(),
                "log": self.request_log(),
            },
            ("POST", "/_sim/reset"): lambda a: self.reset(),
            ("GET", "/_sim/state"): lambda a: self.state(),
        }
        action = routes.get((method, path))
        if action is None:
            return _error(405 if any(p == path for _, p in routes) else 404)
        try:
            args = json.loads(raw) if raw.strip() else {}
            if not isinstance(args, dict):
                raise TypeError("the body must be a JSON object")
            result = action(args)
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "Not Found")
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return _json(200, {"ok": True, **result} if isinstance(result, dict) else {"ok": True})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simulate", description="Run the OpenRouter API simulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787, help="0 = any free port")
    p.add_argument("--credits", type=float, default=100.0, help="account total_credits (USD)")
    p.add_argument("--usage", type=float, default=0.0, help="account total_usage (USD)")
    p.add_argument("--api-key", default=DEFAULT_API_KEY, help="ordinary key; the one that spends")
    p.add_argument("--management-key", default=DEFAULT_MANAGEMENT_KEY)
    p.add_argument("--key-limit", type=float, default=None, help="spending cap of --api-key")
    p.add_argument("--spend-per-hour", type=float, default=0.0)
    p.add_argument("--topup-below", type=float, default=None, help="auto top-up threshold")
    p.add_argument("--topup", type=float, default=0.0, help="auto top-up amount")
    p.add_argument("--legacy", action="store_true", help="/key answers 404, /auth/key works")
    p.add_argument("--minimal-shape", action="store_true", help="older minimal /key shape")
    p.add_argument(
        "--credits-zeros-for-ordinary",
        action="store_true",
        help="/credits answers zeros to ordinary keys instead of 403",
    )
    p.add_argument("--keys", type=int, default=0, metavar="N", help="add N extra capped keys")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: the caller handles signals
            previous[signum] = signal.signal(signum, on_signal)
    try:
        try:
            sim = Simulator(host=args.host, port=args.port)
        except OSError as exc:
            print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
            return 1
        sim.set_account(total_credits=args.credits, total_usage=args.usage)
        sim.add_key(args.api_key, name="Simulated API key", limit=args.key_limit)
        sim.add_key(args.management_key, name="Simulated management key", management=True)
        sim.set_spend(key=args.api_key, usd_per_hour=args.spend_per_hour)
        sim.set_topup(below_usd=args.topup_below, topup_usd=args.topup)
        sim.configure(
            legacy=args.legacy,
            minimal_shape=args.minimal_shape,
            credits_zeros_for_ordinary=args.credits_zeros_for_ordinary,
        )
        sim.add_fleet(args.keys)
        with sim:
            print(f"OpenRouter simulator on {sim.base_url}", flush=True)
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
