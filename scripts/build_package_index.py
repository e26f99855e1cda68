"""Write ``profiles/carebridge/.index.json`` from the package's resource files.

The index is the FHIR NPM package index (``index-version`` 1): one entry per
``<Type>-<id>.json`` file with its resourceType, id, url, version and, for
StructureDefinitions, kind and type. Run it after adding or changing a file; the
package tests fail when the index and the files disagree.

Usage::

    python scripts/build_package_index.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1] / "profiles" / "carebridge"
INDEX_KEYS = ("resourceType", "id", "url", "version", "kind", "type")


def build_index(folder: Path = PACKAGE) -> dict[str, Any]:
    files = []
    for path in sorted(folder.glob("*.json")):
        if path.name in ("package.json", ".index.json"):
            continue
        resource = json.loads(path.read_text())
        entry: dict[str, Any] = {"filename": path.name}
        entry.update({k: resource[k] for k in INDEX_KEYS if k in resource and isinstance(resource[k], str)})
        files.append(entry)
    return {"index-version": 1, "files": files}


def render(index: dict[str, Any]) -> str:
    return json.dumps(index, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed index is stale")
    args = parser.parse_args(argv)
    text = render(build_index())
    target = PACKAGE / ".index.json"
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} is stale: run python scripts/build_package_index.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
