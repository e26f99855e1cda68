"""Vendor HL7's official R4 examples of the resource types carebridge serves, as test data.

Reads the npm package ``hl7.fhir.r4.examples@4.0.1`` (HL7's "FHIR R4 package: Examples",
licence CC0-1.0 in its ``package.json``), checks the tarball against its pinned npm
integrity, and copies every ``<Type>-<id>.json`` of the types below, byte for byte, to
``tests/data/r4-examples/``, with a ``README.md`` recording the source, the licence, the
SHA-256 of each file and the examples left out (with why).

Usage::

    python scripts/vendor_r4_examples.py                 # runs npm pack in a temporary directory
    python scripts/vendor_r4_examples.py --from FILE.tgz # a tarball already downloaded
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parents[1]
OUT: Final = ROOT / "tests" / "data" / "r4-examples"
PACKAGE: Final = "hl7.fhir.r4.examples@4.0.1"
# `npm view hl7.fhir.r4.examples@4.0.1 dist.integrity`
INTEGRITY: Final = "sha512-DXBdIZOeQaSKIgCU7w6HOC7sw/6BzylmipLkBW4f//pT+Bc94x+8LImwTdvaNThPJoOzpBzvxAzNqjeu3X/zLw=="
TYPES: Final = (
    "Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization", "CareTeam", "ServiceRequest",
    "CarePlan", "Goal", "Condition", "Consent", "Questionnaire", "QuestionnaireResponse", "Observation", "Task",
    "Encounter", "EpisodeOfCare", "DocumentReference", "Provenance",
)
#: examples HL7 published that are not valid R4 themselves, with the reason
LEFT_OUT: Final = {
    "Questionnaire-qs1.json": "items of groups have no linkId, which R4 requires (Questionnaire.item.linkId 1..1)",
}


class VendorError(RuntimeError):
    pass


def fetch() -> bytes:
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm is not on PATH; pass --from FILE.tgz")
    with tempfile.TemporaryDirectory(prefix="r4-examples-") as tmp:
        subprocess.run([npm, "pack", PACKAGE, "--ignore-scripts", "--silent"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise VendorError(f"npm pack left {len(tarballs)} tarballs")
        return tarballs[0].read_bytes()


def verify(tarball: bytes) -> None:
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode()
    if digest != expected:
        raise VendorError(f"the tarball's {algorithm} {digest} is not the pinned integrity of {PACKAGE}")


def extract(tarball: bytes) -> tuple[dict[str, bytes], dict[str, object]]:
    chosen: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        manifest_file = archive.extractfile("package/package.json")
        assert manifest_file is not None
        manifest = json.loads(manifest_file.read())
        for member in archive.getmembers():
            name = member.name.removeprefix("package/")
            if "/" in name or not name.endswith(".json") or name.split("-", 1)[0] not in TYPES:
                continue
            if name in LEFT_OUT or not member.isfile():
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            data = handle.read()
            if json.loads(data).get("resourceType") != name.split("-", 1)[0]:
                continue
            chosen[name] = data
    return chosen, manifest


def readme(files: dict[str, bytes], manifest: dict[str, object]) -> str:
    lines = [
        "# HL7 FHIR R4 examples (test data)",
        "",
        f"Every example of {', '.join(TYPES)} in the npm package `{PACKAGE}` "
        f"(\"{manifest.get('title')}\", {manifest.get('author')}; `{manifest.get('url')}`), copied byte for byte "
        "by `python scripts/vendor_r4_examples.py`. Do not edit them by hand.",
        "",
        f"Tarball integrity: `{INTEGRITY}`.",
        "",
        f"Licence: `{manifest.get('license')}` in the package's `package.json`; the FHIR specification's "
        "content is published by HL7 under CC0 1.0 (https://hl7.org/fhir/R4/license.html).",
        "",
        "Left out (not valid R4 as published):",
        "",
        *(f"- `{name}`: {why}" for name, why in sorted(LEFT_OUT.items())),
        "",
        f"## Files ({len(files)}, SHA-256)",
        "",
        *(f"- `{name}` {hashlib.sha256(data).hexdigest()}" for name, data in sorted(files.items())),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="the package tarball, already downloaded")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        tarball = args.source.read_bytes() if args.source else fetch()
        verify(tarball)
        files, manifest = extract(tarball)
    except (VendorError, subprocess.CalledProcessError, OSError) as exc:
        print(f"vendor_r4_examples: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.json"):
        old.unlink()
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    (args.out / "README.md").write_text(readme(files, manifest))
    print(f"wrote {len(files)} examples to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
