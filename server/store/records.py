"""What the repository hands back: stored versions and pages, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from server.fhir.dates import http_date


@dataclass(frozen=True)
class StoredResource:
    resource_type: str
    id: str
    version_id: int
    #: microseconds since the epoch
    last_updated: int
    #: the JSON as stored (UTF-8); None for a deleted version
    content: bytes | None
    deleted: bool = False
    #: what made this version (history entries): POST, PUT, PATCH or DELETE
    method: str | None = None
    #: the row key, used for keyset paging
    pk: int = 0

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    @property
    def last_modified(self) -> str:
        return http_date(self.last_updated)

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"

    @cached_property
    def resource(self) -> dict[str, Any]:
        return orjson.loads(self.content) if self.content else {}


@dataclass(frozen=True)
class WriteOutcome:
    stored: StoredResource
    #: True when a new resource was made (201), False for an update or a matched condition (200)
    created: bool
    #: True when a conditional create matched an existing resource and nothing was written
    matched: bool = False


@dataclass
class SearchPage:
    matches: list[StoredResource]
    included: list[StoredResource] = field(default_factory=list)
    total: int | None = None
    #: whether another page follows; the cursor for it
    has_next: bool = False
    next_offset: int | None = None
    next_after: int | None = None
    #: OperationOutcome issues to return with the page (warnings)
    issues: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HistoryPage:
    entries: list[StoredResource]
    has_next: bool = False
    total: int | None = None
