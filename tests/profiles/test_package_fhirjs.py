"""The package loads in a second, independent FHIR implementation: FHIR.js (npm ``fhir``).

Every file of ``profiles/carebridge`` and its examples is validated as R4 by FHIR.js, and
its StructureDefinitions and ValueSets are parsed into FHIR.js's conformance model. The
package is installed from the npm registry into a temporary folder; without ``node`` and
``npm``, or without the registry, the test skips and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from carebridge import paths

FHIRJS = "fhir@4.12.0"
HERE = Path(__file__).resolve().parent
PACKAGE = paths.PROFILES / "carebridge"


@pytest.fixture(scope="module")
def fhirjs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run FHIR.js")
    folder = tmp_path_factory.mktemp("fhirjs")
    done = subprocess.run([npm, "install", "--prefix", str(folder), FHIRJS, "--ignore-scripts", "--no-audit",
                           "--no-fund", "--silent"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"npm install {FHIRJS} failed (no registry?): {done.stderr.strip()[:200]}")
    return folder


def run(fhirjs: Path, files: list[Path]) -> dict[str, Any]:
    done = subprocess.run(["node", str(HERE / "fhirjs_check.js"), *map(str, files)], capture_output=True,
                          text=True, env={**os.environ, "NODE_PATH": str(fhirjs / "node_modules")})
    assert done.returncode == 0, done.stderr
    return {Path(r["file"]).name: r for r in map(json.loads, done.stdout.splitlines())}


def test_every_package_file_is_valid_r4_in_fhirjs(fhirjs: Path) -> None:
    files = sorted(PACKAGE.glob("*-*.json")) + sorted((PACKAGE / "example").glob("*.json"))
    results = run(fhirjs, files)
    assert len(results) == len(files) > 40
    assert {name: r["errors"] for name, r in results.items() if not r["valid"]} == {}
    profiles = {name: r["parsed"] for name, r in results.items() if name.startswith("StructureDefinition-")}
    assert profiles and all(count and count > 0 for count in profiles.values()), profiles
    assert all(r["parsed"] == 1 for name, r in results.items() if name.startswith("ValueSet-"))


def test_fhirjs_rejects_a_broken_copy(fhirjs: Path, tmp_path: Path) -> None:
    sd = json.loads((PACKAGE / "StructureDefinition-cap-referral.json").read_text())
    sd["status"] = "bogus"
    sd["notAnElement"] = True
    broken = tmp_path / "StructureDefinition-broken.json"
    broken.write_text(json.dumps(sd))
    result = run(fhirjs, [broken])["StructureDefinition-broken.json"]
    assert not result["valid"]
    assert any("notAnElement" in e or "status" in e for e in result["errors"]), result["errors"]
