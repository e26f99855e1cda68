"""A real FHIR client (fhirpy) against a live ``carebridge serve`` on a loopback port,
with a temporary SQLite store: create, search with paging, update and delete."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from server.auth.tokens import TokenService
from tests.api import ukdata as uk
from tests.conftest import NHS, nhs_number

pytestmark = pytest.mark.live


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("live")
    var = root / "var"
    var.mkdir()
    token = TokenService(var).issue("fhirpy-test", "system/*.cruds", lifetime=3600)  # creates the key first
    port = _free_port()
    env = dict(os.environ, CAREBRIDGE_VAR_DIR=str(var))
    env.pop("CAREBRIDGE_PUBLIC_BASE_URL", None)
    cmd = [str(Path(sys.executable).with_name("carebridge")), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--database-url", f"sqlite:///{root / 'store.sqlite'}"]
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        while True:  # until the server answers, or stops
            if proc.poll() is not None:
                raise RuntimeError(f"carebridge serve exited with {proc.returncode}: "
                                   f"{(root / 'serve.log').read_text()}")
            try:
                if httpx.get(f"{base}/metadata", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base, token
    finally:
        proc.terminate()
        proc.wait()
        log.close()


@pytest.fixture(scope="module")
def client(live):
    base, token = live
    return SyncFHIRClient(base, authorization=f"Bearer {token}")


def test_create_search_page_update_delete(client, live):
    made = []
    for n in range(1, 8):
        p = client.resource("Patient", **uk.service_user(n, family="Fhirpy", given=f"G{n}"))
        p.save()
        assert p.id and p["meta"]["versionId"] == "1"
        made.append(p.id)

    found = client.resources("Patient").search(family="fhirpy").limit(3).fetch_all()
    assert sorted(r.id for r in found) == sorted(made)
    assert client.resources("Patient").search(family="fhirpy").count() == 7

    first = client.resources("Patient").search(identifier=f"{NHS}|{nhs_number(1)}").get()
    assert first.id == made[0]
    first["gender"] = "male"
    first.save()
    again = client.reference("Patient", made[0]).to_resource()
    assert again["gender"] == "male" and again["meta"]["versionId"] == "2"

    again.delete()
    with pytest.raises(ResourceNotFound):
        client.resources("Patient").search(_id=made[0]).get()
    r = httpx.get(f"{live[0]}/Patient/{made[0]}", headers={"Authorization": f"Bearer {live[1]}"})
    assert r.status_code == 410
    assert client.resources("Patient").search(family="fhirpy").count() == 6


def test_paging_links_are_absolute_under_the_base(client, live):
    base, token = live
    bundle = httpx.get(f"{base}/Patient", params={"_count": 2},
                       headers={"Authorization": f"Bearer {token}"}).json()
    nxt = uk.link(bundle, "next")
    assert nxt is not None and nxt.startswith(f"{base}/Patient?")
