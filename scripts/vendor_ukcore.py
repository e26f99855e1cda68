"""Vendor the UK Core conformance resources that the carebridge package builds on.

NHS England publishes UK Core (HL7 UK's FHIR R4 profiles for England) as the
public repository ``NHSDigital/FHIR-R4-UKCORE-STAGING-MAIN``, in FHIR XML. This
script reads a local clone or mirror of it, takes the profiles, extensions,
value sets and code systems named in ``SEEDS`` together with every UK Core
resource they refer to (``type.profile``, ``type.targetProfile``,
``binding.valueSet``, ``baseDefinition``, value set includes), transitively, and
writes each as FHIR JSON under ``profiles/ukcore/`` (``<Type>-<id>.json``).

The XML is converted to JSON by the rules of the FHIR R4 JSON format, with the
element cardinalities and types read from ``profiles/r4/element-definitions.json``
(compiled from HL7's R4 snapshots): elements that repeat become arrays,
primitives take their JSON kind (boolean, integer, number, string), ``id`` and
extensions of primitives go to ``_name``, narrative ``div`` stays XHTML text.
Element order follows the XML, which follows the R4 definitions. Nothing else is
changed.

``manifest.json`` records the source repository, commit, package name and
version and, for each file, its source path and the SHA-256 of the XML read and
of the JSON written. The same commit always produces byte-identical files.

Usage::

    python scripts/vendor_ukcore.py MIRROR [--commit SHA] [--out DIR]

``MIRROR`` is a git directory (a bare mirror or a clone's ``.git``) or a work
tree; with a git directory the files are read from ``--commit`` (default
``HEAD``) with ``git show``. Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

JSON = dict[str, Any]

REPOSITORY: Final = "NHSDigital/FHIR-R4-UKCORE-STAGING-MAIN"
UKCORE_BASE: Final = "https://fhir.hl7.org.uk/"
FOLDERS: Final = ("structuredefinitions", "valuesets", "codesystems")
FHIR_NS: Final = "{http://hl7.org/fhir}"
XHTML_NS: Final = "http://www.w3.org/1999/xhtml"

#: What carebridge builds on; everything these refer to in UK Core follows.
SEEDS: Final = (
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-RelatedPerson",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Practitioner",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-PractitionerRole",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-CareTeam",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-CarePlan",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Consent",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Questionnaire",
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-QuestionnaireResponse",
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-SourceOfServiceRequest",
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory",
    "https://fhir.hl7.org.uk/ValueSet/UKCore-NHSNumberVerificationStatus",
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
)

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_OUT: Final = REPO_ROOT / "profiles" / "ukcore"
ELEMENT_DEFINITIONS: Final = REPO_ROOT / "profiles" / "r4" / "element-definitions.json"
CANONICAL_KEYS: Final = frozenset({"profile", "targetProfile", "valueSet", "baseDefinition"})
URL_PATTERN: Final = re.compile(rb'<url value="([^"]+)"')


class VendorError(RuntimeError):
    """The source is missing, unexpected or cannot be converted."""


# --------------------------------------------------------------------------
# Reading the source
# --------------------------------------------------------------------------


class Source:
    """Files of the UK Core repository at one commit (git directory) or as checked out."""

    def __init__(self, location: Path, commit: str) -> None:
        self.location = location
        self.git = (location / "HEAD").is_file() and (location / "objects").is_dir()
        if not self.git and (location / ".git").exists():
            self.git, self.location = True, location / ".git"
        if self.git:
            self.commit = self._git("rev-parse", f"{commit}^{{commit}}").decode().strip()
        elif commit != "HEAD":
            raise VendorError("--commit needs a git directory, not a work tree")
        else:
            self.commit = "work tree (no commit)"

    def _git(self, *args: str) -> bytes:
        result = subprocess.run(["git", "--git-dir", str(self.location), *args], capture_output=True, check=False)
        if result.returncode != 0:
            raise VendorError(f"git {' '.join(args)}: {result.stderr.decode().strip()}")
        return result.stdout

    def list(self, folder: str) -> list[str]:
        if self.git:
            out = self._git("ls-tree", "--name-only", f"{self.commit}:{folder}").decode()
            return [f"{folder}/{name}" for name in out.split() if name.endswith(".xml")]
        return sorted(f"{folder}/{p.name}" for p in (self.location / folder).glob("*.xml"))

    def read(self, path: str) -> bytes:
        if self.git:
            return self._git("show", f"{self.commit}:{path}")
        return (self.location / path).read_bytes()


def index_canonicals(source: Source) -> dict[str, str]:
    """Canonical URL -> path of every conformance resource in the folders read."""
    found: dict[str, str] = {}
    for folder in FOLDERS:
        for path in source.list(folder):
            match = URL_PATTERN.search(source.read(path))
            if match:
                found.setdefault(match.group(1).decode(), path)
    return found


# --------------------------------------------------------------------------
# FHIR XML -> JSON
# --------------------------------------------------------------------------


class Converter:
    """FHIR R4 XML to JSON, driven by the element cardinalities and types of the R4 snapshots."""

    def __init__(self, definitions: JSON) -> None:
        self.resources: Mapping[str, Mapping[str, JSON]] = definitions["resources"]
        self.datatypes: Mapping[str, Mapping[str, JSON]] = definitions["datatypes"]
        self.primitives: Mapping[str, JSON] = definitions["primitives"]

    def resource(self, root: ET.Element) -> JSON:
        rtype = local_name(root)
        table = self.resources.get(rtype)
        if table is None:
            raise VendorError(f"resource type {rtype} is not in {ELEMENT_DEFINITIONS.name}")
        out: JSON = {"resourceType": rtype}
        self._children(root, table, "", out, rtype)
        return out

    def _lookup(self, table: Mapping[str, JSON], prefix: str, name: str, where: str) -> tuple[str, str, JSON]:
        """(JSON name, type, definition) of child ``name`` under ``prefix`` in ``table``."""
        key = prefix + name
        definition = table.get(key)
        if definition is not None:
            if "ref" in definition:
                return name, "@" + definition["ref"], definition
            return name, definition["types"][0], definition
        for candidate, definition in table.items():
            if not candidate.endswith("[x]") or not candidate.startswith(prefix):
                continue
            stem = candidate[len(prefix):-3]
            if "." in stem or not name.startswith(stem):
                continue
            suffix = name[len(stem):]
            for type_name in definition["types"]:
                if type_name[0].upper() + type_name[1:] == suffix:
                    return name, type_name, definition
        raise VendorError(f"{where}: no element {key!r}")

    def _children(self, node: ET.Element, table: Mapping[str, JSON], prefix: str, out: JSON, where: str) -> None:
        for attribute in ("id", "url"):
            value = node.get(attribute)
            if value is not None and prefix + attribute in table:
                out[attribute] = value
        for child in node:
            if not isinstance(child.tag, str):
                continue  # comments
            name = local_name(child)
            json_name, type_name, definition = self._lookup(table, prefix, name, where)
            repeats = definition["max"] != "1"
            here = f"{where}.{name}"
            if type_name.startswith("@"):
                value: Any = {}
                self._children(child, table, type_name[1:] + ".", value, here)
                self._put(out, json_name, value, repeats)
            elif type_name in self.primitives:
                self._primitive(child, json_name, type_name, repeats, out, here)
            elif type_name in ("BackboneElement", "Element") and (prefix + name + ".id") in table:
                value = {}
                self._children(child, table, prefix + name + ".", value, here)
                self._put(out, json_name, value, repeats)
            elif type_name == "Resource":
                inner = next(iter(child), None)
                if inner is None:
                    raise VendorError(f"{here}: empty resource container")
                self._put(out, json_name, self.resource(inner), repeats)
            else:
                table_of_type = self.datatypes.get(type_name)
                if table_of_type is None:
                    raise VendorError(f"{here}: datatype {type_name} is not in {ELEMENT_DEFINITIONS.name}")
                value = {}
                self._children(child, table_of_type, "", value, here)
                self._put(out, json_name, value, repeats)

    def _primitive(self, node: ET.Element, name: str, type_name: str, repeats: bool, out: JSON, where: str) -> None:
        if type_name == "xhtml":
            out[name] = xhtml_text(node)
            return
        raw = node.get("value")
        value = None if raw is None else self._typed(raw, type_name, where)
        extra: JSON = {}
        if node.get("id") is not None:
            extra["id"] = node.get("id")
        extensions = [e for e in node if isinstance(e.tag, str) and local_name(e) == "extension"]
        if extensions:
            extra["extension"] = []
            for extension in extensions:
                item: JSON = {}
                self._children(extension, self.datatypes["Extension"], "", item, where + ".extension")
                extra["extension"].append(item)
        if repeats:
            values = out.setdefault(name, [])
            shadows = out.setdefault("_" + name, [])
            values.append(value)
            shadows.append(extra or None)
        else:
            if value is not None:
                out[name] = value
            if extra:
                out["_" + name] = extra

    def _typed(self, raw: str, type_name: str, where: str) -> Any:
        kind = self.primitives[type_name]["json"]
        if kind == "boolean":
            if raw not in ("true", "false"):
                raise VendorError(f"{where}: {raw!r} is not a boolean")
            return raw == "true"
        if kind == "integer":
            return int(raw)
        if kind == "number":
            number = float(raw)
            return int(number) if re.fullmatch(r"-?\d+", raw) else number
        return raw

    @staticmethod
    def _put(out: JSON, name: str, value: Any, repeats: bool) -> None:
        if repeats:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value


def tidy(value: Any) -> Any:
    """Drop the ``_name`` arrays that carry nothing, and the nulls in ``name`` arrays that nothing shadows."""
    if isinstance(value, list):
        return [tidy(item) for item in value]
    if not isinstance(value, dict):
        return value
    result: JSON = {}
    for key, item in value.items():
        if key.startswith("_") and isinstance(item, list) and all(i is None for i in item):
            continue
        result[key] = tidy(item)
    return result


def local_name(node: ET.Element) -> str:
    tag = node.tag
    if tag == "{" + XHTML_NS + "}div":
        return "div"  # Narrative.div is XHTML
    if not tag.startswith(FHIR_NS):
        raise VendorError(f"{tag} is not in the FHIR namespace")
    return tag[len(FHIR_NS):]


def xhtml_text(node: ET.Element) -> str:
    ET.register_namespace("", XHTML_NS)
    text = ET.tostring(node, encoding="unicode", short_empty_elements=True)
    return text.strip()


# --------------------------------------------------------------------------
# Which resources
# --------------------------------------------------------------------------


def references(resource: Any) -> Iterator[str]:
    """UK Core canonicals a resource refers to."""
    if isinstance(resource, dict):
        for key, value in resource.items():
            if key in CANONICAL_KEYS or key == "system":
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if isinstance(item, str) and item.startswith(UKCORE_BASE):
                        yield item.split("|", 1)[0]
            elif key == "valueSet" or (key == "include" and isinstance(value, list)):
                yield from references(value)
            else:
                yield from references(value)
    elif isinstance(resource, list):
        for item in resource:
            yield from references(item)


def vendor(source: Source, converter: Converter) -> tuple[dict[str, JSON], dict[str, tuple[str, str]]]:
    """Resources by output file name, and (source path, source SHA-256) by output file name."""
    canonicals = index_canonicals(source)
    pending = list(SEEDS)
    seen: set[str] = set()
    files: dict[str, JSON] = {}
    origins: dict[str, tuple[str, str]] = {}
    while pending:
        url = pending.pop(0)
        if url in seen:
            continue
        seen.add(url)
        path = canonicals.get(url)
        if path is None:
            if url in SEEDS:
                raise VendorError(f"{url} is not published in {REPOSITORY} at {source.commit}")
            continue  # a UK Core URL that is not a conformance resource here (e.g. an identifier namespace)
        raw = source.read(path)
        resource = tidy(converter.resource(ET.fromstring(raw)))
        name = f"{resource['resourceType']}-{resource['id']}.json"
        files[name] = resource
        origins[name] = (path, hashlib.sha256(raw).hexdigest())
        pending.extend(sorted(set(references(resource)) - seen))
    return files, origins


def dump(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mirror", type=Path, help="git directory or work tree of " + REPOSITORY)
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        source = Source(args.mirror, args.commit)
        package = json.loads(source.read("package.json"))
        converter = Converter(json.loads(ELEMENT_DEFINITIONS.read_text()))
        files, origins = vendor(source, converter)
    except VendorError as exc:
        print(f"vendor_ukcore: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.json"):
        if old.name != "manifest.json" and old.name not in files:
            old.unlink()
    entries = {}
    for name in sorted(files):
        data = dump(files[name])
        (args.out / name).write_bytes(data)
        resource = files[name]
        entries[name] = {
            "resourceType": resource["resourceType"],
            "url": resource.get("url"),
            "version": resource.get("version"),
            "source": origins[name][0],
            "sourceSha256": origins[name][1],
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    manifest = {
        "repository": f"https://github.com/{REPOSITORY}",
        "commit": source.commit,
        "package": {"name": package.get("name"), "version": package.get("version")},
        "seeds": list(SEEDS),
        "files": entries,
    }
    (args.out / "manifest.json").write_bytes(dump(manifest))
    print(f"{len(files)} resources from {REPOSITORY} at {source.commit} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
