"""The JSON Schema of OpenRouter's answers against the API's own verbatim examples."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from .schema import SCHEMA, problems

# verbatim from the API reference (docs/openrouter-api.md)
KEY_EXAMPLE = {
    "data": {
        "byok_usage": 17.38,
        "byok_usage_daily": 17.38,
        "byok_usage_monthly": 17.38,
        "byok_usage_weekly": 17.38,
        "creator_user_id": "user_2dHFtVWx2n56w6HkM0000000000",
        "expires_at": "2027-12-31T23:59:59Z",
        "include_byok_in_limit": False,
        "is_free_tier": False,
        "is_management_key": False,
        "is_provisioning_key": False,
        "label": "sk-or-v1-au7...890",
        "limit": 100,
        "limit_remaining": 74.5,
        "limit_reset": "monthly",
        "rate_limit": {
            "interval": "1h",
            "note": "This field is deprecated and safe to ignore.",
            "requests": 1000,
        },
        "usage": 25.5,
        "usage_daily": 25.5,
        "usage_monthly": 25.5,
        "usage_weekly": 25.5,
    }
}
OLDER_KEY_EXAMPLE = {
    "data": {
        "label": "sk-or-v1-0fa...240",
        "limit": None,
        "usage": 0.65017511,
        "limit_remaining": None,
        "is_free_tier": False,
        "rate_limit": {"requests": 40, "interval": "10s"},
    }
}
ACTIVITY_EXAMPLE = {
    "data": [
        {
            "date": "2025-08-24",
            "model": "openai/gpt-4.1",
            "model_permaslug": "openai/gpt-4.1-2025-04-14",
            "endpoint_id": "550e8400-e29b-41d4-a716-446655440000",
            "provider_name": "OpenAI",
            "usage": 0.015,
            "byok_usage_inference": 0.012,
            "requests": 5,
            "prompt_tokens": 50,
            "completion_tokens": 125,
            "reasoning_tokens": 25,
        }
    ]
}


def test_the_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    ("definition", "body"),
    [
        ("key_answer", KEY_EXAMPLE),
        ("legacy_key_answer", OLDER_KEY_EXAMPLE),
        ("credits_answer", {"data": {"total_credits": 100.5, "total_usage": 25.75}}),
        ("credits_answer", {"data": {"total_credits": 0, "total_usage": 0}}),
        ("activity_page", ACTIVITY_EXAMPLE),
        ("error_answer", {"error": {"code": 403, "message": "Only management keys can"}}),
        (
            "error_answer",
            {"error": {"code": 429, "message": "slow", "metadata": {}}, "user_id": "u"},
        ),
    ],
)
def test_the_documented_examples_match(definition: str, body: object) -> None:
    assert problems(definition, body) == []


def test_an_overspent_key_and_unknown_fields_match() -> None:
    data = {**KEY_EXAMPLE["data"], "limit_remaining": -0.5, "usage": 100.5, "new_field": [1]}
    assert problems("key_answer", {"data": data}) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"usage": "25.5"}, "data.usage: '25.5' is not of type 'number'"),
        ({"label": None}, "data.label: None is not of type 'string'"),
        ({"limit_remaining": True}, "data.limit_remaining: True is not of type 'number', 'null'"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(change: dict[str, object], problem: str) -> None:
    assert problems("key_answer", {"data": {**KEY_EXAMPLE["data"], **change}}) == [problem]


def test_a_field_that_is_always_present_is_required() -> None:
    data = {k: v for k, v in KEY_EXAMPLE["data"].items() if k != "creator_user_id"}
    assert problems("key_answer", {"data": data}) == [
        "data: 'creator_user_id' is a required property"
    ]
