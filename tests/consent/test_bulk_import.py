"""A store filled by ``carebridge import`` enforces Consents exactly as one filled through the API.

The bulk loader writes its own multi-row inserts; the consent rule rows of an imported Consent
must land with it, or every consent-limited caller would see nothing shared (and a Consent that
limits the custodian would be ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carebridge.config import Settings
from server.api.app import create_app
from server.store.bulk import import_ndjson
from server.store.engine import make_engine
from server.store.schema import consent_rule, consent_term
from tests.conftest import BASE, Fhir
from tests.consent.scenario import ALL, CALLERS, EXPECTED, RESOURCES

TYPES = sorted({ref.split("/")[0] for ref in ALL})


@pytest.fixture
def imported(settings: Settings, tmp_path: Path) -> Any:
    path = tmp_path / "world.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in RESOURCES) + b"\n")
    assert import_ndjson(settings, [path], batch_size=7, progress=False) == 0
    return create_app(settings)


def test_imported_consents_have_their_rules(imported: Any, settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rules = conn.execute(select(consent_rule.c.patient_id, func.count()).group_by(consent_rule.c.patient_id)).all()
        actors = set(conn.execute(select(consent_term.c.value).where(consent_term.c.kind == "actor")).scalars())
    engine.dispose()
    # a: the GP (permit + nested deny), the carer, the council and the trust, the relative; c: dr-no
    assert dict(rules) == {"a": 6, "c": 1}
    assert actors == {"Organization/gp1", "RelatedPerson/carer-a", "Organization/la", "Organization/rt5",
                      "RelatedPerson/relative-a", "Practitioner/dr-no"}


@pytest.mark.parametrize("caller", ["custodian", "objected-clinician", "gp", "other-gp", "social-care", "carer"])
def test_imported_store_shows_each_caller_what_is_shared(imported: Any, caller: str) -> None:
    tokens = imported.state.api.tokens
    claims = dict(CALLERS[caller])
    scope = claims.pop("scope")
    with TestClient(imported, base_url=BASE) as client:
        api = Fhir(client, tokens.issue(f"client-{caller}", scope, **claims))
        seen: set[str] = set()
        for rtype in TYPES:
            r = api.get(f"{rtype}?_count=100")
            assert r.status_code == 200, r.text
            seen |= {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in r.json().get("entry", [])}
    assert seen == EXPECTED[caller]


def test_a_load_leaves_postgresql_with_fresh_statistics(imported: Any, settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        if engine.dialect.name != "postgresql":
            pytest.skip("SQLite plans without statistics: nothing to refresh after a load")
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT relname, last_vacuum IS NOT NULL, last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname IN ('resource', 'token_index', 'string_index', "
                "'reference_index')").all()
        assert sorted(rows) == [(t, True, True) for t in ("reference_index", "resource", "string_index", "token_index")]
    finally:
        engine.dispose()
