"""Replay of stored messages through a changed mapping: resources updated, lineage kept."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
from gp_samples import SR, referral

from adapters.gp_referral.ingest import ingest
from adapters.gp_referral.mapping import MAPPINGS, load
from adapters.gp_referral.replay import replay


def test_replay_with_changed_mapping(repo: Any, fhir: Any, tmp_path: Path) -> None:
    assert all(o.accepted for _, o in ingest(repo, [referral("P1"), referral("P2")]))
    # v2: the same mapping, except that routine referrals become "urgent"-priority text
    v2 = tmp_path / "v2"
    shutil.copytree(MAPPINGS / "v1", v2)
    spec = orjson.loads((v2 / "message.json").read_bytes())
    spec["version"] = "gp-referral/v2"
    tables = orjson.loads((v2 / "tables.json").read_bytes())
    tables["priority"]["R"] = "urgent"
    (v2 / "message.json").write_bytes(orjson.dumps(spec))
    (v2 / "tables.json").write_bytes(orjson.dumps(tables))

    same = list(replay(repo, load("v1")))
    assert [o.created for o in same] == [0, 0]
    outs = list(replay(repo, load("v2", str(v2))))
    assert len(outs) == 2 and all(o.accepted for o in outs)
    sr = fhir.get(f"ServiceRequest?identifier={SR}|P1").json()["entry"][0]["resource"]
    assert sr["priority"] == "urgent" and sr["meta"]["versionId"] == "2"
    provs = fhir.get(f"Provenance?target=ServiceRequest/{sr['id']}").json()["entry"]
    assert sorted(p["resource"]["policy"][0].rsplit("/", 1)[1] for p in provs) == ["v1", "v2"]
