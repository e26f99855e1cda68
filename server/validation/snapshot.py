"""Snapshot generation: a StructureDefinition's differential merged onto its base's snapshot.

The base is resolved by canonical URL from the package, the vendored UK Core (which
publishes differentials only, so its snapshots are generated here too, on R4's) and R4
(``profiles/r4/structure-definitions.json``). The rules, after the R4 profiling page:

- the snapshot starts as a copy of the base's, in its order;
- a differential element whose id is in the snapshot constrains it: its properties replace
  the base's, ``constraint`` entries are added to the inherited ones;
- an element under a complex type the snapshot does not unroll (``Patient.identifier.system``)
  first unrolls that type's elements (of the type's profile when it names one we hold);
- a slice (``Patient.identifier:nhsNumber``) is a copy of the sliced element and its
  children, placed after the sliced element's children and earlier slices; slicing an
  ``extension`` with no ``slicing`` gets the default one (by ``url``, open);
- every element keeps its ``base`` (path, min, max of the element in the base resource).

``python scripts/build_snapshots.py`` writes the package's snapshots; a test regenerates
them and fails when the committed ones differ.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import orjson

from carebridge import paths

JSON = dict[str, Any]
Resolver = Callable[[str], JSON | None]

EXTENSION_SLICING = {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}
CORE = "http://hl7.org/fhir/StructureDefinition/"


class SnapshotError(ValueError):
    """The differential cannot be applied to its base."""


def _path_of(element_id: str) -> str:
    return ".".join(part.split(":", 1)[0] for part in element_id.split("."))


def _merge(target: JSON, diff: JSON) -> None:
    for key, value in diff.items():
        if key in ("id", "path"):
            continue
        if key == "constraint":
            known = {c["key"] for c in target.get("constraint", [])}
            target["constraint"] = [*target.get("constraint", []),
                                    *(copy.deepcopy(c) for c in value if c["key"] not in known)]
        else:
            target[key] = copy.deepcopy(value)


class Generator:
    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve
        self._snapshots: dict[str, list[JSON]] = {}

    def snapshot_of(self, url: str) -> list[JSON] | None:
        url = url.split("|", 1)[0]
        if url in self._snapshots:
            return self._snapshots[url]
        sd = self.resolve(url)
        if sd is None:
            return None
        if "differential" in sd and sd.get("derivation") == "constraint":
            elements = self.generate(sd)
        else:
            elements = sd.get("snapshot", {}).get("element")
            if elements is None:
                raise SnapshotError(f"{url} has neither a snapshot nor a differential")
        self._snapshots[url] = elements
        return elements

    def generate(self, sd: JSON) -> list[JSON]:
        base_url = sd.get("baseDefinition")
        base = self.snapshot_of(base_url) if base_url else None
        if base is None:
            raise SnapshotError(f"{sd.get('url')}: base {base_url} is not available")
        elements = copy.deepcopy(base)
        for diff in sd["differential"]["element"]:
            index = self._ensure(elements, diff["id"], sd.get("url", ""))
            _merge(elements[index], diff)
        return elements

    # -- finding and creating elements --------------------------------------------------
    @staticmethod
    def _find(elements: list[JSON], element_id: str) -> int | None:
        for i, element in enumerate(elements):
            if element["id"] == element_id:
                return i
        return None

    @staticmethod
    def _end_of(elements: list[JSON], index: int) -> int:
        """Index after the element at ``index``, its descendants and its slices."""
        root = elements[index]["id"]
        end = index + 1
        while end < len(elements):
            other = elements[end]["id"]
            if not (other.startswith(root + ".") or other.startswith(root + ":")):
                break
            end += 1
        return end

    def _ensure(self, elements: list[JSON], element_id: str, where: str) -> int:
        found = self._find(elements, element_id)
        if found is not None:
            return found
        head, _, last = element_id.rpartition(".")
        if not head:
            raise SnapshotError(f"{where}: {element_id} is not in the base")
        name, colon, slice_name = last.partition(":")
        if colon:
            return self._add_slice(elements, f"{head}.{name}", slice_name, where)
        parent = self._ensure(elements, head, where)
        self._unroll(elements, parent, where)
        found = self._find(elements, element_id)
        if found is None:
            raise SnapshotError(f"{where}: {element_id} is not an element of {elements[parent]['id']}'s type")
        return found

    def _add_slice(self, elements: list[JSON], sliced_id: str, slice_name: str, where: str) -> int:
        sliced = self._ensure(elements, sliced_id, where)
        if "slicing" not in elements[sliced]:
            if sliced_id.rsplit(".", 1)[-1] not in ("extension", "modifierExtension"):
                raise SnapshotError(f"{where}: {sliced_id} is sliced ({slice_name}) but has no slicing")
            elements[sliced]["slicing"] = copy.deepcopy(EXTENSION_SLICING)
        # the slice starts as the sliced element and its children, without their slices
        template = [elements[sliced]]
        end = sliced + 1
        while end < len(elements) and elements[end]["id"].startswith(sliced_id + "."):
            template.append(elements[end])
            end += 1
        copies = []
        for element in template:
            piece = copy.deepcopy(element)
            piece["id"] = f"{sliced_id}:{slice_name}" + element["id"][len(sliced_id):]
            if element is template[0]:
                piece.pop("slicing", None)
                piece["sliceName"] = slice_name
            copies.append(piece)
        at = self._end_of(elements, sliced)
        elements[at:at] = copies
        return at

    def _unroll(self, elements: list[JSON], parent: int, where: str) -> None:
        element = elements[parent]
        if parent + 1 < len(elements) and elements[parent + 1]["id"].startswith(element["id"] + "."):
            return  # already unrolled
        types = element.get("type", [])
        if len(types) != 1:
            raise SnapshotError(f"{where}: cannot unroll {element['id']}: it has {len(types)} types")
        kind = types[0]["code"]
        source = None
        for profile in types[0].get("profile", []):
            source = self.snapshot_of(profile)
            if source is not None:
                break
        if source is None:
            source = self.snapshot_of(CORE + kind)
        if source is None:
            raise SnapshotError(f"{where}: the definition of {kind} is not available")
        root_id, root_path = source[0]["id"], source[0]["path"]
        children = []
        for child in source[1:]:
            piece = copy.deepcopy(child)
            piece["id"] = element["id"] + child["id"][len(root_id):]
            piece["path"] = element["path"] + child["path"][len(root_path):]
            children.append(piece)
        elements[parent + 1:parent + 1] = children


# -- the definitions available here ---------------------------------------------------------
def _read(path: Any) -> JSON:
    return orjson.loads(path.read_bytes())


@cache
def known_definitions() -> dict[str, JSON]:
    """StructureDefinitions by canonical URL: R4 bases, vendored UK Core, the package."""
    found: dict[str, JSON] = {}
    bundle = _read(paths.R4_DEFINITIONS / "structure-definitions.json")
    for entry in bundle["entry"]:
        found[entry["resource"]["url"]] = entry["resource"]
    for folder in (paths.PROFILES / "ukcore", paths.PROFILES / "carebridge"):
        for path in sorted(folder.glob("StructureDefinition-*.json")):
            sd = _read(path)
            found[sd["url"]] = sd
    return found


def package_snapshots(files: Iterable[JSON] | None = None) -> dict[str, list[JSON]]:
    """Snapshot elements of each package profile, by canonical URL."""
    definitions = known_definitions()
    generator = Generator(definitions.get)
    sds = list(files) if files is not None else [
        _read(p) for p in sorted((paths.PROFILES / "carebridge").glob("StructureDefinition-*.json"))]
    return {sd["url"]: generator.generate(sd) for sd in sds}
