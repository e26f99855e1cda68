"""Re-running stored source messages through a (newer) mapping.

The raw bytes of every landed message are kept as a DocumentReference (identifier system
``source-message``); replay reads them back page by page and lands them again. Messages
already landed by that mapping version are skipped by their Provenance; the rest are
updated in place through the same conditional updates, with a new Provenance naming the
new mapping version.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

from adapters.common.provenance import RAW_INPUT
from adapters.common.result import Outcome
from adapters.gp_referral.convert import CONTENT_TYPE
from adapters.gp_referral.ingest import ingest
from adapters.gp_referral.mapping import Mapping
from server.consent.context import AccessContext
from server.store.repository import Repository


def stored_messages(repo: Repository, page_size: int = 500) -> Iterator[bytes]:
    ctx = AccessContext.system("carebridge-replay")
    query = repo.parse_search(["DocumentReference"], [("identifier", f"{RAW_INPUT}|"), ("_count", str(page_size))])
    after: int | None = None
    while True:
        page = repo.search(ctx, query, after=after)
        for match in page.matches:
            for content in match.resource.get("content", []):
                attachment = content.get("attachment", {})
                if attachment.get("contentType") == CONTENT_TYPE and attachment.get("data"):
                    yield base64.b64decode(attachment["data"])
        if not page.has_next or page.next_after is None:
            return
        after = page.next_after


def replay(repo: Repository, mapping: Mapping) -> Iterator[Outcome]:
    # read everything first: the replay updates the very documents it pages through
    raws = list(stored_messages(repo))
    for _, outcome in ingest(repo, raws, mapping=mapping):
        yield outcome
