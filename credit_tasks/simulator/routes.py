"""What the simulator answers: the API's routes under /api/v1, and the admin routes under /_sim/.

The answers have OpenRouter's shapes (the field table in docs/openrouter-api.md), including
its error body: `{"error": {"code": <status>, "message": <text>}}`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .faults import API_PREFIX, Fault
from .keys import period_labels
from .workspaces import WORKSPACES_PAGE_DEFAULT, WORKSPACES_PAGE_MAX

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
    no_workspaces: bool = False  # an account from before workspaces: /workspaces answers 404


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
    if sub not in API_PATHS and not is_single:
        return error_response(404)
    if (sub == "/key" and sim.switches.legacy) or (
        sub == "/workspaces" and sim.switches.no_workspaces
    ):
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
        labels = period_labels(sim.today())
        if sub in ("/key", "/auth/key"):
            free = total_credits <= 0
            info = caller.info(labels, free_tier=free, minimal=sim.switches.minimal_shape)
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
            return json_response(200, {"data": target.item(labels)})
        params = {name: values[0] for name, values in parse_qs(query).items()}
        if sub == "/activity":
            return _activity(sim, params)
        offset = _whole(params.get("offset", "0"))
        if offset is None:
            return error_response(400, "Invalid offset")
        if sub == "/workspaces":
            return _workspaces(sim, offset, params.get("limit"))
        include = params.get("include_disabled", "false").lower() == "true"
        page = sim.keys_page(offset, include, params.get("workspace_id"))
        return json_response(200, {"data": page})


API_PATHS = ("/key", "/auth/key", "/credits", "/keys", "/workspaces", "/activity")


def _whole(text: str | None) -> int | None:
    """A whole number >= 0 from a query parameter, or None."""
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value if value >= 0 else None


def _workspaces(sim: Simulator, offset: int, limit_text: str | None) -> Response:
    limit = WORKSPACES_PAGE_DEFAULT if limit_text is None else _whole(limit_text)
    if limit is None or not 1 <= limit <= WORKSPACES_PAGE_MAX:
        return error_response(400, f"limit must be between 1 and {WORKSPACES_PAGE_MAX}")
    every = sorted(sim.workspaces.values(), key=lambda w: (w.created_at, w.id))
    page = [w.item() for w in every[offset : offset + limit]]
    return json_response(200, {"data": page, "total_count": len(every)})


def _activity(sim: Simulator, params: dict[str, str]) -> Response:
    day = params.get("date")
    if day is not None:
        try:
            date.fromisoformat(day)
        except ValueError:
            return error_response(400, "date must be YYYY-MM-DD")
    rows = sim.ledger.rows(
        sim.today(),
        day=day,
        key_hash=params.get("api_key_hash"),
        workspace_id=params.get("workspace_id"),
        by_workspace=params.get("group_by") == "workspace",
    )
    return json_response(200, {"data": rows})


def control(sim: Simulator, method: str, path: str, raw: bytes) -> Response:
    """An admin request under /_sim/: the body's JSON object holds the method's arguments."""
    routes: dict[tuple[str, str], Callable[[dict[str, Any]], object]] = {
        ("POST", "/_sim/account"): lambda a: sim.set_account(**a),
        ("POST", "/_sim/keys"): lambda a: {"hash": sim.add_key(**a)},
        ("PATCH", "/_sim/keys"): lambda a: sim.update_key(**a),
        ("POST", "/_sim/keys/reset_usage"): lambda a: sim.reset_key_usage(**a),
        ("POST", "/_sim/keys/raw"): lambda a: sim.add_raw_key_item(**a),
        ("POST", "/_sim/workspaces"): lambda a: {"id": sim.add_workspace(**a)},
        ("POST", "/_sim/activity"): lambda a: sim.add_activity(**a),
        ("POST", "/_sim/activity/seed"): lambda a: sim.seed_activity(**a),
        ("POST", "/_sim/today"): lambda a: sim.set_today(**a),
        ("POST", "/_sim/loop"): lambda a: sim.set_loop(**a),
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
