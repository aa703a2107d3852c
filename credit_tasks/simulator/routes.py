"""What the simulator answers: the API's routes under /api/v1, and the admin routes under /_sim/.

The answers have OpenRouter's shapes (the field table in docs/openrouter-api.md), including
its error body: `{"error": {"code": <status>, "message": <text>}}`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .faults import API_PREFIX, Fault

if TYPE_CHECKING:
    from .server import Simulator

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


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Switches:
    """How this deployment answers: older paths and shapes seen in the wild."""

    legacy: bool = False  # /key answers 404; only /auth/key works
    minimal_shape: bool = False  # /key answers the older, minimal shape
    credits_zeros_for_ordinary: bool = False  # /credits answers zeros instead of 403
    latency_ms: float = 0.0  # every API answer waits this long, as over a real network


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, headers=headers or {})


def error_response(
    status: int, message: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    text = message or MESSAGES.get(status, "Error")
    return json_response(status, {"error": {"code": status, "message": text}}, headers)


def token(auth: str | None) -> str | None:
    """The bearer token of an Authorization header, if any."""
    scheme, _, value = (auth or "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def fault_response(fault: Fault) -> Response | None:
    """The canned answer of a fault, or None when the normal answer should be sent."""
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if fault.kind == "status":
        status = fault.status or 500
        if status == 429:
            headers.update({"X-RateLimit-Limit": "40", "X-RateLimit-Remaining": "0"})
            if fault.reset_in_s is not None:  # epoch milliseconds, as OpenRouter sends it
                reset_ms = round((time.time() + fault.reset_in_s) * 1000)
                headers["X-RateLimit-Reset"] = str(reset_ms)
        return error_response(status, fault.message, headers)
    if fault.kind == "error_in_200":
        code = fault.status or 500
        message = fault.message or MESSAGES.get(code, "Error")
        return json_response(200, {"error": {"code": code, "message": message}}, headers)
    if fault.kind == "body":
        raw = (fault.body or "").encode()
        return Response(200, raw, fault.content_type or "application/json", headers)
    if fault.kind == "data":
        return json_response(200, {"data": fault.data}, headers)
    return None


def answer(sim: Simulator, method: str, path: str, query: str, auth: str | None) -> Response:
    """The normal answer to an API request."""
    sub = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else ""
    is_single = sub.startswith("/keys/") and len(sub) > 6 and "/" not in sub[6:]
    if sub not in ("/key", "/auth/key", "/credits", "/keys") and not is_single:
        return error_response(404)
    if sub == "/key" and sim.switches.legacy:
        return error_response(404)
    if method != "GET":
        return error_response(405)
    bearer = token(auth)
    if bearer is None:
        return error_response(401, "No auth credentials found")
    with sim.lock:
        sim.accrue()
        caller = sim.by_secret(bearer)
        if caller is None or caller.disabled:
            return error_response(401, "User not found.")
        total_credits, total_usage = sim.totals()
        if sub in ("/key", "/auth/key"):
            info = caller.info(free_tier=total_credits <= 0, minimal=sim.switches.minimal_shape)
            return json_response(200, {"data": info})
        if sub == "/credits" and not caller.management and sim.switches.credits_zeros_for_ordinary:
            return json_response(200, {"data": {"total_credits": 0, "total_usage": 0}})
        if not caller.management:
            return error_response(403, ONLY_MANAGEMENT)
        if sub == "/credits":
            totals = {"total_credits": total_credits, "total_usage": total_usage}
            return json_response(200, {"data": totals})
        if is_single:
            target = sim.by_hash(sub[6:])
            if target is None or target.management:
                return error_response(404, "Key not found")
            return json_response(200, {"data": target.item()})
        params = parse_qs(query)
        try:
            offset = int(params.get("offset", ["0"])[0])
        except ValueError:
            return error_response(400, "Invalid offset")
        if offset < 0:
            return error_response(400, "Invalid offset")
        include = params.get("include_disabled", ["false"])[0].lower() == "true"
        return json_response(200, {"data": sim.keys_page(offset, include)})


def control(sim: Simulator, method: str, path: str, raw: bytes) -> Response:
    """An admin request under /_sim/: the body's JSON object holds the method's arguments."""
    routes: dict[tuple[str, str], Callable[[dict[str, Any]], object]] = {
        ("POST", "/_sim/account"): lambda a: sim.set_account(**a),
        ("POST", "/_sim/keys"): lambda a: {"hash": sim.add_key(**a)},
        ("PATCH", "/_sim/keys"): lambda a: sim.update_key(**a),
        ("POST", "/_sim/keys/reset_usage"): lambda a: sim.reset_key_usage(**a),
        ("POST", "/_sim/keys/raw"): lambda a: sim.add_raw_key_item(**a),
        ("POST", "/_sim/fleet"): lambda a: sim.add_fleet(**a),
        ("POST", "/_sim/spend"): lambda a: sim.set_spend(**a),
        ("POST", "/_sim/topup"): lambda a: sim.set_topup(**a),
        ("POST", "/_sim/config"): lambda a: sim.configure(**a),
        ("POST", "/_sim/faults"): lambda a: sim.inject(**a),
        ("DELETE", "/_sim/faults"): lambda a: sim.clear_faults(),
        ("GET", "/_sim/requests"): lambda a: {
            "requests": sim.requests(),
            "log": sim.request_log(),
        },
        ("POST", "/_sim/reset"): lambda a: sim.reset(),
        ("GET", "/_sim/state"): lambda a: sim.state(),
    }
    action = routes.get((method, path))
    if action is None:
        return error_response(405 if any(p == path for _, p in routes) else 404)
    try:
        args = json.loads(raw) if raw.strip() else {}
        if not isinstance(args, dict):
            raise TypeError("the body must be a JSON object")
        result = action(args)
    except KeyError as exc:
        return error_response(404, str(exc.args[0]) if exc.args else "Not Found")
    except (TypeError, ValueError) as exc:
        return error_response(400, str(exc))
    return json_response(200, {"ok": True, **result} if isinstance(result, dict) else {"ok": True})
