"""What a request leaves behind for its AuditEvent, gathered on the hot path.

Handlers call :func:`note` with what they returned or wrote; the audit middleware reads
that back from the ASGI scope when the response has gone. Only plain tuples are kept
(type, id, version, row key): no JSON is parsed and no query is run here; which patients
a resource concerns is looked up later, off the request path, by the writer.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from server.store.records import StoredResource

#: ASGI scope keys
NOTES = "carebridge.audit"
#: where ``server.api.context.access_context`` leaves the caller's context
CONTEXT = "carebridge.access"

#: (resource type, id, version id or None, row key or 0, deleted)
Touched = tuple[str, str, int | None, int, bool]


@dataclass
class Notes:
    """What the handler saw: the resources returned or written, the query, the patients named."""

    resources: list[Touched] = field(default_factory=list)
    #: the applied search query (``a=b&c=d``), for the query entity
    query: str | None = None
    #: patients the request named itself (``$everything``'s id, ``?patient=``)
    patients: list[str] = field(default_factory=list)
    #: overrides of the interaction the URL implies (``transaction`` / ``batch``)
    subtype: str | None = None
    #: created by an update (PUT that made a new resource)
    created: bool = False


def notes(scope: MutableMapping[str, Any]) -> Notes:
    found: Notes | None = scope.get(NOTES)
    if found is None:
        found = scope[NOTES] = Notes()
    return found


def note(request: Any, resources: Iterable[StoredResource] = (), *, query: str | None = None,
         patients: Iterable[str] = (), subtype: str | None = None, created: bool = False) -> None:
    """Record what a handler returned or wrote (``request`` is a Starlette request)."""
    n = notes(request.scope)
    n.resources.extend((s.resource_type, s.id, s.version_id, s.pk, s.deleted) for s in resources)
    if query is not None:
        n.query = query
    n.patients.extend(patients)
    if subtype is not None:
        n.subtype = subtype
    n.created = n.created or created


def note_locations(request: Any, entries: Iterable[dict[str, Any]], subtype: str) -> None:
    """A batch or transaction: the resources its response entries name by ``location``."""
    n = notes(request.scope)
    n.subtype = subtype
    for entry in entries:
        response = entry.get("response") if isinstance(entry, dict) else None
        if not isinstance(response, dict):
            continue
        location = response.get("location")
        if not isinstance(location, str) or not str(response.get("status", "")).startswith("2"):
            continue
        parts = location.split("/")
        if len(parts) >= 4 and parts[-2] == "_history" and parts[-1].isdigit():
            n.resources.append((parts[-4], parts[-3], int(parts[-1]), 0, False))
        elif len(parts) >= 2:
            n.resources.append((parts[-2], parts[-1], None, 0, False))


# -- which interaction a request is ---------------------------------------------------------
#: (method, URL shape) -> (restful-interaction code, action). In a shape ``T`` is a resource
#: type, ``id`` and ``vid`` an id and version, ``$`` an operation; other parts are literal.
INTERACTIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", ""): ("search-system", "E"),
    ("POST", ""): ("batch", "E"),
    ("GET", "_history"): ("history-system", "R"),
    ("GET", "$"): ("operation", "E"),
    ("POST", "$"): ("operation", "E"),
    ("GET", "T"): ("search-type", "E"),
    ("POST", "T"): ("create", "C"),
    ("PUT", "T"): ("update", "U"),
    ("DELETE", "T"): ("delete", "D"),
    ("GET", "T/_history"): ("history-type", "R"),
    ("POST", "T/_search"): ("search-type", "E"),
    ("GET", "T/$"): ("operation", "E"),
    ("POST", "T/$"): ("operation", "E"),
    ("GET", "T/id"): ("read", "R"),
    ("PUT", "T/id"): ("update", "U"),
    ("PATCH", "T/id"): ("patch", "U"),
    ("DELETE", "T/id"): ("delete", "D"),
    ("GET", "T/id/_history"): ("history-instance", "R"),
    ("GET", "T/id/$"): ("operation", "E"),
    ("POST", "T/id/$"): ("operation", "E"),
    ("GET", "T/id/_history/vid"): ("vread", "R"),
}
#: the action of each subtype when a handler overrides it
ACTIONS = {code: action for code, action in INTERACTIONS.values()} | {"transaction": "E", "batch": "E"}
_LITERALS = {"_history", "_search"}
#: public endpoints: no caller, nothing about a patient; not audited
UNAUDITED = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})


def shape(path: str) -> str:
    """The URL shape of a ``/fhir`` path (see :data:`INTERACTIONS`)."""
    parts = [p for p in path.split("/")[2:] if p]
    out = []
    for i, part in enumerate(parts):
        if part.startswith("$"):
            out.append("$")
        elif part in _LITERALS:
            out.append(part)
        elif i == 0:
            out.append("T")
        elif i == 1:
            out.append("id")
        else:
            out.append("vid")
    return "/".join(out)


def classify(method: str, path: str) -> tuple[str, str]:
    """The restful-interaction code and the action (C/R/U/D/E) of a request."""
    method = "GET" if method == "HEAD" else method
    return INTERACTIONS.get((method, shape(path)), ("operation", "E"))


def operation_name(path: str) -> str | None:
    return next((p for p in path.split("/") if p.startswith("$")), None)
