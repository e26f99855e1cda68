"""``carebridge audit break-glass``: every break-glass access, for the privacy officer."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from carebridge.config import Settings
from server.audit.events import BREAK_GLASS_TAG, CLIENT_ID, ODS, REQUEST_ID
from server.audit.store import audit_database_url, open_repository, same_store
from server.consent.context import AccessContext
from server.store.repository import Repository

AUDITOR = AccessContext.system("carebridge-audit-report", "system/AuditEvent.rs")
COLUMNS = ("when", "who", "client", "organisation", "patient", "purpose", "reason", "accessed", "outcome",
           "request_id")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    audit = sub.add_parser("audit", help="reports from the audit trail")
    reports = audit.add_subparsers(dest="report", required=True)
    p = reports.add_parser("break-glass", help="every break-glass access (purpose BTG or ETREAT)")
    p.add_argument("--since", help="from this date or instant (e.g. 2026-12-01)")
    p.add_argument("--until", help="up to and including this date or instant")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--database-url", help="the clinical store (the audit store is found from it)")
    p.set_defaults(handler=cmd_break_glass)


def _store(settings: Settings) -> Repository:
    from server.definitions.search_parameters import default_registry

    url = audit_database_url(settings)
    if same_store(url, settings.database_url):
        from server.store.engine import make_engine

        return Repository(make_engine(settings.database_url), default_registry())
    return open_repository(url)


def break_glass_events(store: Repository, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
    """The break-glass AuditEvents, oldest first, from ``since`` to ``until`` (inclusive)."""
    params = [("_tag", f"{BREAK_GLASS_TAG['system']}|{BREAK_GLASS_TAG['code']}"), ("_sort", "date"),
              ("_count", "500")]
    if since:
        params.append(("date", f"ge{since}"))
    if until:
        params.append(("date", f"le{until}"))
    query = store.parse_search(["AuditEvent"], params, strict=True)
    events: list[dict[str, Any]] = []
    offset: int = 0
    after: Any = None
    while True:
        page = store.search(AUDITOR, query, offset=offset, after=after)
        events.extend(m.resource for m in page.matches)
        if not page.has_next:
            return events
        offset, after = page.next_offset or 0, page.next_after


def summary(event: dict[str, Any]) -> dict[str, Any]:
    """One line of the report: when, who, client, organisation, patient, reason, what, request id."""
    agents = event.get("agent", [])
    who = next((a["who"].get("reference") for a in agents if a.get("requestor") and "reference" in a.get("who", {})),
               None)
    ident = [a.get("who", {}).get("identifier", {}) for a in agents]
    client = next((i.get("value") for i in ident if i.get("system") == CLIENT_ID), None)
    org = next((i.get("value") for i in ident if i.get("system") == ODS), None)
    entities = event.get("entity", [])
    patients = [e["what"]["reference"] for e in entities
                if e.get("role", {}).get("code") == "1" and "reference" in e.get("what", {})]
    accessed = [e["what"]["reference"] for e in entities
                if e.get("role", {}).get("code") == "4" and "reference" in e.get("what", {})]
    queries = [e.get("description", "") for e in entities if e.get("role", {}).get("code") == "24"]
    details = [d for e in entities for d in e.get("detail", [])]
    reason = next((d.get("valueString") for d in details if d.get("type") == "break-glass-reason"), None)
    request_id = next((e["what"]["identifier"].get("value") for e in entities
                       if e.get("what", {}).get("identifier", {}).get("system") == REQUEST_ID), None)
    purpose = ",".join(c.get("code", "") for p in event.get("purposeOfEvent", []) for c in p.get("coding", []))
    subtype = ",".join(s.get("code", "") for s in event.get("subtype", []))
    return {
        "when": event.get("recorded"), "who": who, "client": client, "organisation": org,
        "patient": patients, "purpose": purpose, "reason": reason,
        "accessed": {"interaction": subtype, "resources": accessed, "query": queries[0] if queries else None},
        "outcome": event.get("outcome"), "request_id": request_id, "audit_event": event.get("id"),
    }


def _cell(row: dict[str, Any], column: str) -> str:
    value: Any = row.get(column)
    if column == "accessed":
        what = value["resources"] or ([value["query"]] if value["query"] else [])
        shown = ", ".join(what[:3]) + (f" (+{len(what) - 3})" if len(what) > 3 else "")
        return f"{value['interaction']}: {shown}" if shown else str(value["interaction"])
    if isinstance(value, list):
        return ", ".join(value)
    return "" if value is None else str(value)


def render_table(rows: list[dict[str, Any]]) -> str:
    cells = [[_cell(r, c) for c in COLUMNS] for r in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines.append(f"{len(rows)} break-glass access{'es' if len(rows) != 1 else ''}")
    return "\n".join(lines)


def cmd_break_glass(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    try:
        rows = [summary(e) for e in break_glass_events(store, args.since, args.until)]
    finally:
        store.engine.dispose()
    if args.format == "json":
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_table(rows))
    return 0
