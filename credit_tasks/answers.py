"""The API's answers as the client reads them: JSON parsing and the shapes it accepts.

Every answer the field table in the API notes allows is accepted (negative money included),
unknown fields are ignored, and anything else is a `MalformedAnswer` whose one line names the
path and the field. The simulator keeps its own statement of the shapes (a JSON Schema), so a
bug here cannot hide in both.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import MalformedAnswer

MAX_USD = 1e9  # a figure beyond ±MAX_USD is a broken answer, not money

Model = TypeVar("Model", bound=BaseModel)
# the API sets no minimum: negative figures are real (an overspent key, a negative balance)
Money = Annotated[float, Field(ge=-MAX_USD, le=MAX_USD)]


class Strict(BaseModel):
    # strict: a number sent as a string is malformed, not coerced
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)


class KeyData(Strict):
    usage: Money
    limit: Money | None
    limit_remaining: Money | None = None
    label: str | None = None
    is_free_tier: bool | None = None
    usage_daily: Money | None = None  # absent from older answers
    usage_weekly: Money | None = None
    usage_monthly: Money | None = None


class KeyAnswer(Strict):
    data: KeyData


class CreditsData(Strict):
    total_credits: Money
    total_usage: Money


class CreditsAnswer(Strict):
    data: CreditsData


class KeyItem(Strict):
    hash: str
    name: str = ""
    label: str = ""
    disabled: bool = False
    limit: Money | None = None
    limit_remaining: Money | None = None
    limit_reset: str | None = None
    usage: Money = 0.0
    usage_daily: Money | None = None
    usage_weekly: Money | None = None
    usage_monthly: Money | None = None


class Workspace(Strict):
    id: str
    name: str = ""


class WorkspacesPage(Strict):
    data: list[Workspace]


class ActivityRow(Strict):
    date: str
    model: str = ""
    provider_name: str = ""
    usage: Money = 0.0
    requests: int = 0


class ActivityPage(Strict):
    data: list[ActivityRow]


class KeysPage(Strict):
    # each item is read on its own: one bad item must not cost the whole listing
    data: list[Any]


class ErrorDetail(Strict):
    code: int
    message: str = ""


class ErrorAnswer(Strict):
    error: ErrorDetail


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"a non-finite number ({name})")


def parse_json(path: str, text: str) -> dict[str, Any]:
    if not text.strip():
        raise MalformedAnswer(malformed(path, "an empty body"))
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        what = "an HTML page" if text.lstrip().startswith("<") else "a body that is not JSON"
        raise MalformedAnswer(malformed(path, what)) from None
    except (ValueError, RecursionError) as exc:  # NaN, Infinity, absurd nesting
        raise MalformedAnswer(malformed(path, str(exc))) from None
    if not isinstance(body, dict):
        raise MalformedAnswer(malformed(path, f"JSON {type(body).__name__}, not an object"))
    return body


def validate(model: type[Model], body: object, path: str) -> Model:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "body"
        msg = "not an object" if err["type"] == "model_type" else err["msg"]
        reason = f"a bad field {where} ({msg})"
        raise MalformedAnswer(malformed(path, reason)) from None


def malformed(path: str, reason: str) -> str:
    return f"OpenRouter answered /{path} with {reason}: check OPENROUTER_BASE_URL if this persists"
