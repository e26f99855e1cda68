"""Searchset and history Bundles, built from stored JSON without re-parsing it.

Entries are spliced from the stored bytes, so a page of fifty resources costs fifty
memory copies rather than fifty parse/serialise round trips. Only ``_summary`` and
``_elements`` need the parsed resource.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from server.fhir.dates import format_instant, now_instant
from server.search.summary import apply_summary
from server.store.records import HistoryPage, SearchPage, StoredResource

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


def _content(item: StoredResource, summary: str | None, elements: list[str]) -> bytes:
    assert item.content is not None
    if not summary and not elements:
        return item.content
    return orjson.dumps(apply_summary(item.resource, summary, elements))


def _entry(base: str, item: StoredResource, mode: str, summary: str | None, elements: list[str]) -> bytes:
    return b"".join((
        b'{"fullUrl":', orjson.dumps(f"{base}/{item.resource_type}/{item.id}"),
        b',"resource":', _content(item, summary, elements),
        b',"search":{"mode":"', mode.encode(), b'"}}',
    ))


def searchset(
    base: str,
    page: SearchPage,
    links: list[tuple[str, str]],
    *,
    summary: str | None = None,
    elements: list[str] | None = None,
    outcome: dict[str, Any] | None = None,
) -> bytes:
    stamp, _ = now_instant()
    head: dict[str, Any] = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": stamp}, "type": "searchset",
    }
    if page.total is not None:
        head["total"] = page.total
    head["link"] = [{"relation": rel, "url": url} for rel, url in links]
    entries = [_entry(base, m, "match", summary, elements or []) for m in page.matches]
    entries += [_entry(base, i, "include", summary, elements or []) for i in page.included]
    if outcome is not None:
        entries.append(b'{"resource":' + orjson.dumps(outcome) + b',"search":{"mode":"outcome"}}')
    if summary == "count":
        return orjson.dumps(head)
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(entries) + b"]}"


def history(base: str, page: HistoryPage, links: list[tuple[str, str]]) -> bytes:
    stamp, _ = now_instant()
    head: dict[str, Any] = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": stamp}, "type": "history",
        "link": [{"relation": rel, "url": url} for rel, url in links],
    }
    if page.total is not None:
        head["total"] = page.total
    parts = []
    for item in page.entries:
        url = f"{item.resource_type}/{item.id}"
        method = item.method or "PUT"
        request = {"method": method, "url": url if method != "POST" else item.resource_type}
        status = "201 Created" if item.version_id == 1 and method in ("POST", "PUT") else (
            "204 No Content" if method == "DELETE" else "200 OK")
        response = {"status": status, "etag": item.etag, "lastModified": format_instant(item.last_updated)}
        piece = b'{"fullUrl":' + orjson.dumps(f"{base}/{url}")
        if item.content is not None:
            piece += b',"resource":' + item.content
        piece += b',"request":' + orjson.dumps(request) + b',"response":' + orjson.dumps(response) + b"}"
        parts.append(piece)
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(parts) + b"]}"
