"""The account's spend by day, model, provider, key and workspace, and the `/activity` rows.

`/activity` covers the last 30 completed UTC days (today is never in it) and aggregates its
rows by date, model and endpoint: rows carry no key. `api_key_hash` and `workspace_id` narrow
it; `group_by=workspace` splits each row per workspace and adds `workspace_id`.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

ACTIVITY_DAYS = 30
USD_PER_REQUEST = 0.002  # how many requests a spend stands for
TOKENS_PER_REQUEST = (400, 250, 50)  # prompt, completion, reasoning


@dataclass(frozen=True)
class Model:
    """A model served through one endpoint of one provider."""

    name: str
    permaslug: str
    provider: str

    @property
    def endpoint_id(self) -> str:
        return str(uuid.UUID(hashlib.md5(self.permaslug.encode()).hexdigest()))


MODELS = {
    m.name: m
    for m in (
        Model("openai/gpt-4.1", "openai/gpt-4.1-2025-04-14", "OpenAI"),
        Model("openai/gpt-4o-mini", "openai/gpt-4o-mini-2024-07-18", "OpenAI"),
        Model("anthropic/claude-sonnet-4", "anthropic/claude-4-sonnet-20250522", "Anthropic"),
        Model("google/gemini-2.5-flash", "google/gemini-2.5-flash", "Google AI Studio"),
        Model("meta-llama/llama-3.3-70b-instruct", "meta-llama/llama-3.3-70b", "DeepInfra"),
    )
}
DEFAULT_MODEL = "openai/gpt-4o-mini"

# (date, model, key hash or "", workspace id) -> [usage, requests]
_Bucket = tuple[str, str, str, str]


class Ledger:
    """What was spent, kept per day, model, key and workspace. Not thread-safe: the account's
    lock covers it."""

    def __init__(self) -> None:
        self._spent: dict[_Bucket, list[float]] = {}

    def add(
        self,
        day: date,
        model: str,
        key_hash: str | None,
        workspace_id: str,
        usd: float,
        requests: float | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}")
        if usd <= 0 and not requests:
            return
        bucket = self._spent.setdefault(
            (day.isoformat(), model, key_hash or "", workspace_id), [0, 0]
        )
        bucket[0] += usd
        bucket[1] += usd / USD_PER_REQUEST if requests is None else requests

    def rows(
        self,
        today: date,
        *,
        day: str | None = None,
        key_hash: str | None = None,
        workspace_id: str | None = None,
        by_workspace: bool = False,
    ) -> list[dict[str, Any]]:
        """The `/activity` rows of the completed days in reach, newest first."""
        first = (today - timedelta(days=ACTIVITY_DAYS)).isoformat()
        merged: dict[tuple[str, str, str], list[float]] = {}
        for (when, model, key, workspace), (usd, requests) in self._spent.items():
            if not first <= when < today.isoformat() or (day is not None and when != day):
                continue
            if key_hash is not None and key != key_hash:
                continue
            if workspace_id is not None and workspace != workspace_id:
                continue
            group = (when, model, workspace if by_workspace else "")
            total = merged.setdefault(group, [0.0, 0.0])
            total[0] += usd
            total[1] += requests
        rows = [
            _row(when, model, usd, requests, workspace)
            for (when, model, workspace), (usd, requests) in merged.items()
        ]
        return sorted(rows, key=lambda r: (r["date"], r["usage"]), reverse=True)


def _row(when: str, model: str, usd: float, requests: float, workspace: str) -> dict[str, Any]:
    m, count = MODELS[model], round(requests)
    prompt, completion, reasoning = (count * n for n in TOKENS_PER_REQUEST)
    row: dict[str, Any] = {
        "date": when,
        "model": m.name,
        "model_permaslug": m.permaslug,
        "endpoint_id": m.endpoint_id,
        "provider_name": m.provider,
        "usage": round(usd, 6),
        "byok_usage_inference": 0.0,
        "requests": count,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "reasoning_tokens": reasoning,
    }
    if workspace:
        row["workspace_id"] = workspace
    return row
