"""The account's workspaces and the `/workspaces` item shape.

Keys, activity and budgets belong to workspaces; every account has a default one, and
`/keys` without `workspace_id` lists only that one.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

DEFAULT_WORKSPACE_ID = "5f1d7c2e-0b6a-4c1e-9a43-51a7e0c0d001"
DEFAULT_WORKSPACE_NAME = "Default Workspace"
WORKSPACES_PAGE_DEFAULT = 50
WORKSPACES_PAGE_MAX = 100
GUARDRAIL_ID = "9b0ad3f4-7c1e-4f55-8d2a-0c6f2e5b7a10"


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    slug: str
    created_at: str

    @classmethod
    def named(cls, name: str, created_at: str) -> Workspace:
        """A workspace whose id and slug follow from its name, so a test can predict them."""
        digest = hashlib.sha256(f"workspace:{name}".encode()).hexdigest()
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "workspace"
        return cls(str(uuid.UUID(digest[:32])), name, slug, created_at)

    def item(self) -> dict[str, Any]:
        """The `/workspaces` item shape."""
        return {
            "created_at": self.created_at,
            "created_by": None,
            "default_guardrail_id": GUARDRAIL_ID,
            "default_image_model": None,
            "default_provider_sort": None,
            "default_text_model": None,
            "id": self.id,
            "include_byok_in_budgets": False,
            "io_logging_api_key_ids": None,
            "io_logging_sampling_rate": 1,
            "is_data_discount_logging_enabled": False,
            "is_observability_broadcast_enabled": False,
            "is_observability_io_logging_enabled": False,
            "name": self.name,
            "slug": self.slug,
            "updated_at": None,
        }
