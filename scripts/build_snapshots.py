"""Write the snapshots of the carebridge package's StructureDefinitions.

Each ``profiles/carebridge/StructureDefinition-*.json`` gets its ``snapshot``
regenerated from its differential by ``server/validation/snapshot.py`` (on the
vendored UK Core and R4 definitions); the differential is the source, the
snapshot is derived. Run after editing a differential; ``--check`` exits 1 when
a committed snapshot is stale (the package tests do the same).

Usage::

    python scripts/build_snapshots.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.validation.snapshot import package_snapshots  # noqa: E402

PACKAGE = ROOT / "profiles" / "carebridge"


def render(sd: dict) -> str:  # type: ignore[type-arg]
    return json.dumps(sd, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    files = sorted(PACKAGE.glob("StructureDefinition-*.json"))
    sds = {path: json.loads(path.read_text()) for path in files}
    snapshots = package_snapshots(sds.values())
    stale = []
    for path, sd in sds.items():
        updated = {k: v for k, v in sd.items() if k != "snapshot"}
        updated["snapshot"] = {"element": snapshots[sd["url"]]}
        text = render(updated)
        if path.read_text() != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(text)
    if args.check and stale:
        print("stale snapshots: " + ", ".join(stale) + " (run python scripts/build_snapshots.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
