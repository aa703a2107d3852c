"""The field table of OpenRouter's API as JSON Schema, for the tests that hold answers to it.

The schema lives in the package (`credit_tasks/openrouter_schema.json`); each `$defs` entry
ending in `_answer` or `_page` is one whole answer.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA: dict[str, Any] = json.loads(
    resources.files("credit_tasks").joinpath("openrouter_schema.json").read_text()
)


def validator(definition: str) -> Draft202012Validator:
    """A validator of one definition, e.g. `key_answer`, with every other one in reach."""
    return Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"})


def problems(definition: str, body: object) -> list[str]:
    """What makes `body` differ from the definition: `data.limit: 'x' is not of type ...`."""
    found = validator(definition).iter_errors(body)
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or 'body'}: {e.message}" for e in found)
