"""``carebridge ingest gp-referral --fhir-base`` against a real server on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gp_samples import referral

CAREBRIDGE = str(Path(sys.executable).with_name("carebridge"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.live
def test_ingest_against_live_server(tmp_path: Path) -> None:
    env = dict(os.environ, CAREBRIDGE_VAR_DIR=str(tmp_path / "var"))
    port = _port()
    base = f"http://127.0.0.1:{port}/fhir"
    token = subprocess.run([CAREBRIDGE, "token", "--client", "gp-feed", "--scope", "system/*.cruds"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    server = subprocess.Popen([CAREBRIDGE, "serve", "--port", str(port), "--database-url",
                               f"sqlite:///{tmp_path / 's.sqlite'}", "--log-level", "warning"], env=env)
    try:
        for _ in range(600):  # until it answers, or it has exited
            assert server.poll() is None, "carebridge serve exited"
            try:
                if httpx.get(base + "/metadata").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        f = tmp_path / "in.hl7"
        f.write_bytes(referral("LV1") + referral("LV1", trigger="I14") + referral("LV2", trigger="I13"))
        run = [CAREBRIDGE, "ingest", "gp-referral", str(f), "--fhir-base", base, "--token", token]
        done = subprocess.run(run, env=env, capture_output=True, text=True)
        lines = done.stdout.splitlines()
        assert done.returncode == 1, done.stderr
        assert lines[0] == "accepted C82040-LV1I12: 11 created"
        assert lines[1].startswith("accepted C82040-LV1I14")
        assert lines[2].startswith("rejected C82040-LV2I13: RF1-6: no referral matches")
        again = subprocess.run(run, env=env, capture_output=True, text=True).stdout.splitlines()
        assert again[0] == "accepted C82040-LV1I12: 0 created"
        got = httpx.get(base + "/ServiceRequest", headers={"Authorization": f"Bearer {token}"}).json()
        states = [(e["resource"]["status"], e["resource"]["meta"]["versionId"]) for e in got["entry"]]
        assert states == [("revoked", "2")]
    finally:
        server.terminate()
        server.wait()
