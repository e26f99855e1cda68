"""``carebridge validate FILE... [--profile URL] [--json]``: the validator from the command line.

Each FILE is a JSON resource (a Bundle's entries are validated as its resources, located
as ``Bundle.entry[3].resource...``) or NDJSON, one resource a line (located as
``FILE:LINE``). One line per issue: where, severity, FHIRPath location and message; with
``--json``, the OperationOutcome of each resource instead. Exit status 1 when any
resource has an error (or a file cannot be read as JSON), 0 otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from server.validation.outcome import has_errors, operation_outcome
from server.validation.resource import ResourceValidator


def _resources(path: Path) -> Iterator[tuple[str, Any]]:
    """(label, parsed JSON or an Exception) for each resource in the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        yield str(path), exc
        return
    try:
        yield str(path), orjson.loads(raw)
        return
    except orjson.JSONDecodeError as exc:
        whole_error = exc
    lines = raw.splitlines()
    if len([line for line in lines if line.strip()]) < 2:
        yield str(path), whole_error
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        label = f"{path}:{number}"
        try:
            yield label, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield label, exc


def run(files: Sequence[str], profiles: Sequence[str] = (), as_json: bool = False,
        out: TextIO | None = None, validator: ResourceValidator | None = None) -> int:
    out = out or sys.stdout
    validator = validator or ResourceValidator()
    failed = False
    counts = {"resources": 0, "error": 0, "warning": 0}
    for name in files:
        for label, resource in _resources(Path(name)):
            if isinstance(resource, Exception):
                failed = True
                counts["error"] += 1
                print(f"{label}: error: cannot read it as JSON or NDJSON: {resource}", file=out)
                continue
            counts["resources"] += 1
            issues = validator.issues(resource, list(profiles)) if isinstance(resource, dict) else [
                {"severity": "error", "code": "structure", "expression": ["Resource"],
                 "diagnostics": "a resource must be a JSON object"}]
            failed = failed or has_errors(issues)
            for issue in issues:
                if issue["severity"] in counts:
                    counts[issue["severity"]] += 1
            if as_json:
                print(orjson.dumps(operation_outcome(issues)).decode(), file=out)
                continue
            for issue in issues:
                where = ", ".join(issue.get("expression") or [])
                print(f"{label}: {issue['severity']}: {where}: {issue['diagnostics']}", file=out)
    if not as_json:
        print(f"{counts['resources']} resource(s): {counts['error']} error(s), {counts['warning']} warning(s)",
              file=out)
    return 1 if failed else 0
