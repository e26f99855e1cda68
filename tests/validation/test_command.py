"""``carebridge validate``: one line per issue, exit 1 on errors, JSON, NDJSON and Bundles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from carebridge import paths
from carebridge.cli import main

EXAMPLES = paths.PROFILES / "carebridge" / "example"
REFERRAL = "https://fhir.carebridge.example/StructureDefinition/cap-referral"


def _example(name: str) -> dict[str, Any]:
    return json.loads(next(EXAMPLES.glob(f"*-example-{name}.json")).read_text())


def _write(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def test_valid_files_exit_0(capsys: Any) -> None:
    assert main(["validate", *map(str, sorted(EXAMPLES.glob("*.json")))]) == 0
    out = capsys.readouterr().out
    assert "6 resource(s): 0 error(s)" in out


def test_an_error_exits_1_with_file_severity_location_and_message(tmp_path: Path, capsys: Any) -> None:
    referral = _example("cap-referral")
    del referral["requester"]
    bad = _write(tmp_path / "referral.json", referral)
    assert main(["validate", bad]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{bad}: error: ServiceRequest.requester: ") for line in lines), lines


def test_profile_option(tmp_path: Path, capsys: Any) -> None:
    referral = _example("cap-referral")
    del referral["meta"]
    del referral["requester"]
    path = _write(tmp_path / "referral.json", referral)
    assert main(["validate", path]) == 0
    assert main(["validate", path, "--profile", REFERRAL]) == 1
    assert main(["validate", path, "--profile", "https://example.org/none"]) == 1


def test_ndjson_lines_and_bundles(tmp_path: Path, capsys: Any) -> None:
    referral = _example("cap-referral")
    del referral["requester"]
    ndjson = tmp_path / "in.ndjson"
    ndjson.write_text(json.dumps(_example("jane")) + "\n\n" + json.dumps(referral) + "\n")
    assert main(["validate", str(ndjson)]) == 1
    out = capsys.readouterr().out
    assert f"{ndjson}:3: error: ServiceRequest.requester" in out
    assert f"{ndjson}:1: error" not in out
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": _example("jane")}, {"resource": referral}]}
    path = _write(tmp_path / "bundle.json", bundle)
    assert main(["validate", path]) == 1
    assert f"{path}: error: Bundle.entry[1].resource.requester" in capsys.readouterr().out


def test_unreadable_input_exits_1(tmp_path: Path, capsys: Any) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["validate", str(broken), str(tmp_path / "missing.json")]) == 1
    out = capsys.readouterr().out
    assert "broken.json: error: cannot read it" in out and "missing.json: error" in out


def test_json_output_is_an_operation_outcome_per_resource(capsys: Any) -> None:
    assert main(["validate", "--json", str(next(EXAMPLES.glob("Patient-*.json")))]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["severity"] for i in outcome["issue"]] == ["warning"]


def test_the_installed_command(tmp_path: Path) -> None:
    referral = _example("cap-referral")
    del referral["requester"]
    bad = _write(tmp_path / "referral.json", referral)
    command = [sys.executable, "-m", "carebridge.cli", "validate"]
    assert subprocess.run([*command, bad], capture_output=True).returncode == 1
    good = subprocess.run([*command, str(EXAMPLES / "Patient-example-jane.json")], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
