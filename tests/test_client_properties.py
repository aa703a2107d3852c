"""Property tests of the client: any answer the field table allows is read, never refused.

Answers are generated from the JSON Schema of the API (credit_tasks/openrouter_schema.json):
any finite figure within the client's bound (negatives included), null wherever allowed,
optional fields absent, unknown fields added. They are served through httpx.MockTransport.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from credit_tasks.answers import MAX_USD
from credit_tasks.client import OpenRouterClient, Snapshot
from credit_tasks.rules import Status, Thresholds, cents, classify
from credit_tasks.settings import Settings
from credit_tasks.text import plain

from .schema import SCHEMA, problems

API_KEY = "sk-or-v1-prop-api-0123456789abcdef"
MANAGEMENT_KEY = "sk-or-v1-prop-management-fedcba9876543210"
BASE_URL = "https://openrouter.test/api/v1"
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
DEFS: dict[str, Any] = SCHEMA["$defs"]
PROPERTIES = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: no flaky CI
    suppress_health_check=[HealthCheck.too_slow],
)

money = st.one_of(
    st.floats(-MAX_USD, MAX_USD, allow_nan=False, allow_infinity=False),
    st.integers(-int(MAX_USD), int(MAX_USD)),
    st.sampled_from([0, 0.0, -0.0, -0.5, 1e-9]),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), money)
unknown_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values `node` allows: the subset of JSON Schema the field table uses."""
    if "$ref" in node:
        return from_schema(DEFS[node["$ref"].rsplit("/", 1)[1]])
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    return st.one_of(*(_of_type(kind, node) for kind in types))


def _of_type(kind: str, node: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "object":
        return _object(node)
    if kind == "array":
        item = from_schema(node["items"]) if "items" in node else unknown_values
        return st.lists(item, max_size=3)
    simple: dict[str, st.SearchStrategy[Any]] = {
        "number": money,
        "integer": st.integers(0, 10**6),
        "string": st.text(max_size=12),
        "boolean": st.booleans(),
        "null": st.none(),
    }
    return simple[kind]


def _object(node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props: dict[str, Any] = node.get("properties", {})
    required = set(node.get("required", []))
    known = st.fixed_dictionaries(
        {name: from_schema(sub) for name, sub in props.items() if name in required},
        optional={name: from_schema(sub) for name, sub in props.items() if name not in required},
    )
    # the API may add fields at any time; a known field always wins over an unknown one
    extra = st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda name: name not in props),
        unknown_values,
        max_size=2,
    )
    return st.builds(lambda base, more: {**more, **base}, known, extra)


def answer(definition: str) -> st.SearchStrategy[Any]:
    return from_schema(DEFS[definition])


key_answers = st.one_of(answer("key_answer"), answer("legacy_key_answer"))
credits_answers = st.one_of(
    answer("credits_answer"),
    st.just({"data": {"total_credits": 0, "total_usage": 0}}),  # "not visible to this key"
)
thresholds = st.builds(
    lambda critical, gap: Thresholds(warning_usd=critical + gap, critical_usd=critical),
    st.floats(0, 1000),
    st.floats(0.01, 1000),
)


def serve(routes: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1/")
        if path not in routes:
            return httpx.Response(404, json={"error": {"code": 404, "message": "Not Found"}})
        return httpx.Response(200, json=routes[path])

    return handler


def client_for(routes: dict[str, Any], *, management: bool) -> OpenRouterClient:
    values: dict[str, Any] = {"openrouter_api_key": API_KEY, "openrouter_base_url": BASE_URL}
    if management:
        values["openrouter_management_key"] = MANAGEMENT_KEY
    http = httpx.Client(transport=httpx.MockTransport(serve(routes)), base_url=BASE_URL)
    return OpenRouterClient(Settings(_env_file=None, **values), http)  # type: ignore[call-arg]


def expected_remaining(key: dict[str, Any], credits: dict[str, Any] | None) -> float | None:
    """The rules of the API doc: the smaller of the key's cap and the visible account."""
    candidates = []
    if key["limit"] is not None:
        left = key.get("limit_remaining")
        candidates.append(key["limit"] - key["usage"] if left is None else left)
    if credits is not None and (credits["total_credits"], credits["total_usage"]) != (0, 0):
        candidates.append(credits["total_credits"] - credits["total_usage"])
    return min(candidates) if candidates else None


def snapshot_of(key: dict[str, Any], credits: dict[str, Any] | None) -> Snapshot:
    routes = {"key": key} if credits is None else {"key": key, "credits": credits}
    with client_for(routes, management=credits is not None) as client:
        return client.fetch_snapshot(NOW)


@PROPERTIES
@given(key=key_answers, credits=st.none() | credits_answers, th=thresholds)
def test_any_answer_the_table_allows_is_read_and_classified_by_the_rules(
    key: dict[str, Any], credits: dict[str, Any] | None, th: Thresholds
) -> None:
    assert not problems("key_answer", key) or not problems("legacy_key_answer", key)
    snap = snapshot_of(key, credits)  # a MalformedAnswer here fails the property
    expected = expected_remaining(key["data"], None if credits is None else credits["data"])
    assert snap.remaining_usd == expected
    assert snap.usage_usd == key["data"]["usage"]
    event("balance unknown" if expected is None else f"nothing left: {expected <= 0}")
    if expected is None:
        # what the check reports as unknown, with UNKNOWN_BALANCE_HINT
        assert snap.source == "none"
    else:
        assert snap.source in ("key_limit", "account")
        status = classify(expected, Status.OK, th)
        left = cents(expected)  # money is compared as the messages show it
        if left <= 0 or left < cents(th.critical_usd):
            assert status is Status.CRITICAL
        elif left >= cents(th.warning_usd):
            assert status is Status.OK


@PROPERTIES
@given(page=answer("keys_page"))
def test_any_keys_page_the_table_allows_is_read_whole(page: dict[str, Any]) -> None:
    assert problems("keys_page", page) == []
    # as the API sends them: one item per key, each with a hash (texts are cleaned)
    hashes = [plain(item["hash"]) for item in page["data"]]
    assume(all(hashes) and len(set(hashes)) == len(hashes))
    with client_for({"key": {}, "keys": page}, management=True) as client:
        listing = client.list_keys(NOW)
    assert listing.unreadable == []
    event(f"{len(page['data'])} items")
    enabled = [item for item in page["data"] if not item["disabled"]]
    assert [k.hash for k in listing.keys] == [plain(item["hash"]) for item in enabled]
    for key, item in zip(listing.keys, enabled, strict=True):
        derived = None if item["limit"] is None else item["limit"] - item["usage"]
        left = item["limit_remaining"]
        assert key.remaining_usd == (derived if left is None else left)
        reset = item["limit_reset"]
        assert (key.limit_usd, key.usage_usd, key.limit_reset) == (
            item["limit"],
            item["usage"],
            None if reset is None else plain(reset),
        )


@PROPERTIES
@given(page=answer("keys_page"))
def test_any_keys_page_gives_one_printable_key_per_hash(page: dict[str, Any]) -> None:
    with client_for({"key": {}, "keys": page}, management=True) as client:
        listing = client.list_keys(NOW)
    hashes = [k.hash for k in listing.keys]
    assert len(hashes) == len(set(hashes))
    for key in listing.keys:
        texts = (key.hash, key.name, key.label, key.limit_reset or "")
        assert key.hash and all(text.isprintable() for text in texts)
    enabled = {plain(item["hash"]) for item in page["data"] if not item["disabled"]}
    assert set(hashes) <= enabled
