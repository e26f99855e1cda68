"""Profile validation: a StructureDefinition snapshot compiled into a tree of rules.

A profile is compiled once (:class:`Profiles` keeps each by canonical URL) into one
:class:`Rule` per snapshot element, linked as the JSON is nested: children by element name,
slices under their sliced element. A check walks the resource along the rules it has,
so elements the profile leaves as the base defines them cost nothing here (the structure
checker has already checked them against R4).

What a rule checks on the instance:

- cardinality where the profile narrows the base (the base's own is the structure
  checker's), and the cardinality of every slice;
- ``fixed[x]`` (exact JSON equality) and ``pattern[x]`` (the instance holds at least the
  pattern's content; arrays: each pattern item matched by some instance item);
- choice types narrowed by the profile (``value[x]`` only ``dateTime``);
- slicing with ``value`` and ``pattern`` discriminators on a path (``system``, ``url``,
  ``coding.system``, ``$this``): items are matched to slices; ``closed`` rules reject an
  item no slice matches; an extension slice without its own ``url`` element is
  discriminated by its type's extension profile URL;
- extension slices typed with an extension profile held here are checked against that
  profile (its url, value types, bindings, nested extension slices);
- bindings ``required`` (error) and ``extensible`` (warning) on code, Coding and
  CodeableConcept values, through :mod:`server.validation.terminology`; a value set that
  cannot be expanded, or a code whose membership cannot be settled, is a warning. R4's own
  required bindings are left to the structure checker;
- reference targets: a literal reference's resource type against ``targetProfile``;
- the profile's own invariants (those R4 does not define; R4's run on every resource).

Not checked: ``ordered`` slicing, discriminators of type ``exists``, ``type`` and
``profile``, re-slicing, ``type.profile`` of non-extension elements, ``maxLength``,
``minValue``/``maxValue``, ``mustSupport`` (a rule for systems, not instances) and
``preferred``/``example`` bindings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from carebridge import paths
from server.validation.invariants import Invariant, from_constraint, r4_keys
from server.validation.outcome import Finding, error, warning
from server.validation.snapshot import CORE, Generator, SnapshotError, known_definitions
from server.validation.terminology import ExpansionError, Terminology, default_terminology, strip_version

JSON = dict[str, Any]
_CODED = frozenset({"code", "Coding", "CodeableConcept"})
_PRIMITIVE_JSON = (str, bool, int, float)


def _cap(type_code: str) -> str:
    return type_code[0].upper() + type_code[1:]


def _max(value: Any) -> int | None:
    return None if value in (None, "*") else int(value)


@dataclass(eq=False)
class Slicing:
    discriminators: list[tuple[str, str]]
    rules: str


@dataclass(eq=False)
class Rule:
    id: str
    path: str
    name: str
    min: int
    max: int | None
    #: the base element's max: whether the JSON holds an array
    array: bool
    check_min: bool
    check_max: bool
    types: tuple[str, ...] = ()
    fixed: Any = None
    has_fixed: bool = False
    pattern: Any = None
    has_pattern: bool = False
    binding: tuple[str, str] | None = None
    target_types: frozenset[str] | None = None
    type_profiles: tuple[str, ...] = ()
    invariants: list[Invariant] = field(default_factory=list)
    children: dict[str, Rule] = field(default_factory=dict)
    slicing: Slicing | None = None
    slices: list[Rule] = field(default_factory=list)
    slice_name: str | None = None
    #: the children that check anything (the others are left to the structure checker)
    active: list[Rule] = field(default_factory=list)
    #: a choice element whose types the profile narrows (checked on each value)
    narrowed: bool = False
    #: what this slice requires at each discriminator path, worked out on first use
    discriminated: dict[str, tuple[str, list[Any]] | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.id


@dataclass(eq=False)
class CompiledProfile:
    url: str
    type: str
    root: Rule


class Profiles:
    """Every profile held here (package, UK Core, R4), compiled on first use and kept."""

    def __init__(self, definitions: dict[str, JSON] | None = None, terminology: Terminology | None = None) -> None:
        self.definitions = definitions if definitions is not None else known_definitions()
        self.terminology = terminology or default_terminology()
        self._generator = Generator(self.definitions.get)
        self._compiled: dict[str, CompiledProfile | None] = {}
        self._lock = threading.Lock()
        self._core_required = _core_required_value_sets()
        self._r4_keys = r4_keys()
        self._base_types = _base_choice_types()

    def knows(self, url: str) -> bool:
        return strip_version(url) in self.definitions

    def get(self, url: str) -> CompiledProfile | None:
        key = strip_version(url)
        found = self._compiled.get(key)
        if found is not None or key in self._compiled:
            return found
        with self._lock:
            if key not in self._compiled:
                self._compiled[key] = self._compile(key)
        return self._compiled[key]

    def _compile(self, url: str) -> CompiledProfile | None:
        sd = self.definitions.get(url)
        if sd is None:
            return None
        try:
            elements = sd.get("snapshot", {}).get("element") or self._generator.snapshot_of(url)
        except SnapshotError:
            return None
        if not elements:
            return None
        return CompiledProfile(url, str(sd.get("type")), self._rules(elements))

    def _rules(self, elements: list[JSON]) -> Rule:
        by_id: dict[str, Rule] = {}
        root: Rule | None = None
        for element in elements:
            rule = self._rule(element)
            by_id[rule.id] = rule
            if root is None:
                root = rule
                continue
            head, _, last = rule.id.rpartition(".")
            name, colon, _slice = last.partition(":")
            if colon:
                sliced = by_id.get(f"{head}.{name}")
                if sliced is not None:
                    sliced.slices.append(rule)
            else:
                parent = by_id.get(head)
                if parent is not None:
                    parent.children[name] = rule
        assert root is not None
        _prune(root)
        return root

    def _rule(self, element: JSON) -> Rule:
        element_id: str = element["id"]
        last = element_id.rpartition(".")[2]
        name = last.partition(":")[0]
        base = element.get("base") or {}
        base_min = int(base.get("min", element.get("min")) or 0)
        base_max = _max(base.get("max", element.get("max", "*")))
        minimum = int(element.get("min", 0))
        maximum = _max(element.get("max", "*"))
        slice_name = element.get("sliceName")
        narrower_max = maximum is not None and (base_max is None or maximum < base_max)
        rule = Rule(
            id=element_id, path=element["path"], name=name, min=minimum, max=maximum,
            array=base_max != 1 and element_id.count(".") > 0,
            check_min=minimum > base_min or slice_name is not None,
            check_max=narrower_max or slice_name is not None,
            slice_name=slice_name,
        )
        types = element.get("type") or []
        rule.types = tuple(t.get("code", "") for t in types)
        if name.endswith("[x]"):
            base_types = self._base_types.get(str(base.get("path", element["path"])))
            rule.narrowed = base_types is None or set(rule.types) != base_types
        for key, value in element.items():
            if key.startswith("fixed") and key != "fixed":
                rule.fixed, rule.has_fixed = value, True
            elif key.startswith("pattern") and key != "pattern":
                rule.pattern, rule.has_pattern = value, True
        binding = element.get("binding") or {}
        value_set = binding.get("valueSet")
        strength = binding.get("strength")
        if strength in ("required", "extensible") and isinstance(value_set, str):
            core_required = strength == "required" and strip_version(value_set) in self._core_required
            if not core_required and set(rule.types) & _CODED:
                rule.binding = (strength, strip_version(value_set))
        targets: set[str] = set()
        for t in types:
            for target in t.get("targetProfile", []):
                resolved = self._type_of(target)
                if resolved is None:
                    targets = set()
                    break
                targets.add(resolved)
            rule.type_profiles += tuple(t.get("profile", []))
        if targets and "Resource" not in targets:
            rule.target_types = frozenset(targets)
        for constraint in element.get("constraint", []):
            if constraint.get("key") in self._r4_keys:
                continue
            invariant = from_constraint(constraint)
            if invariant is not None:
                rule.invariants.append(invariant)
        slicing = element.get("slicing")
        if isinstance(slicing, dict):
            rule.slicing = Slicing(
                [(str(d.get("type")), str(d.get("path"))) for d in slicing.get("discriminator", [])],
                str(slicing.get("rules", "open")),
            )
        return rule

    def _type_of(self, profile_url: str) -> str | None:
        url = strip_version(profile_url)
        if url.startswith(CORE) and url.count("/") == len(CORE.split("/")) - 1:
            return url[len(CORE):]
        sd = self.definitions.get(url)
        return str(sd["type"]) if sd is not None and "type" in sd else None

    # -- validation -------------------------------------------------------------------------
    def validate(self, profile: CompiledProfile, resource: JSON, where: str | None = None) -> list[Finding]:
        out: list[Finding] = []
        rtype = resource.get("resourceType")
        location = where or (rtype if isinstance(rtype, str) else profile.type)
        if resource.get("resourceType") != profile.type:
            out.append(error("invalid", location,
                             f"profile {profile.url} is for {profile.type}, not {resource.get('resourceType')}"))
            return out
        _Walk(self, resource, out).element(profile.root, resource, resource, location)
        return out


def _prune(rule: Rule) -> bool:
    """Marks the children that check something; whether ``rule`` or anything under it does."""
    rule.active = [child for child in rule.children.values() if _prune(child)]
    for piece in rule.slices:
        _prune(piece)
    return bool(rule.active or rule.slices or rule.has_fixed or rule.has_pattern or rule.binding
                or rule.target_types is not None or rule.invariants or rule.max == 0 or rule.check_min
                or rule.check_max or rule.type_profiles or rule.narrowed)


def _base_choice_types() -> dict[str, set[str]]:
    """The types of every R4 choice element, by path (``ServiceRequest.occurrence[x]``)."""
    table = orjson.loads((paths.R4_DEFINITIONS / "element-definitions.json").read_bytes())
    found: dict[str, set[str]] = {}
    for section in ("resources", "datatypes"):
        for type_name, elements in table[section].items():
            for relative, spec in elements.items():
                if relative.endswith("[x]"):
                    found[f"{type_name}.{relative}"] = set(spec["types"])
    return found


def _core_required_value_sets() -> frozenset[str]:
    """R4's required bindings that the structure checker enforces (complete expansions)."""
    table = orjson.loads((paths.R4_DEFINITIONS / "required-bindings.json").read_bytes())
    found = set()
    for section in ("resources", "datatypes"):
        for entries in table[section].values():
            for entry in entries:
                if entry.get("complete") and isinstance(entry.get("valueSet"), str):
                    found.add(strip_version(entry["valueSet"]))
    return frozenset(found)


@dataclass(slots=True)
class _Item:
    """One value of an element: the JSON value, the object whose children it has (for a
    primitive, its ``_name`` sibling), the JSON type suffix of a choice, and its location."""

    value: Any
    obj: Any
    type_code: str
    where: str


def _pattern_matches(pattern: Any, value: Any) -> bool:
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(_pattern_matches(p, value.get(k)) for k, p in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(value, list):
            return False
        return all(any(_pattern_matches(p, v) for v in value) for p in pattern)
    return bool(pattern == value) and type(pattern) is type(value)


def _at_path(value: Any, path: list[str]) -> Iterator[Any]:
    if not path:
        if isinstance(value, list):
            yield from value
        else:
            yield value
        return
    if isinstance(value, list):
        for item in value:
            yield from _at_path(item, path)
        return
    if isinstance(value, dict):
        child = value.get(path[0])
        if child is not None:
            yield from _at_path(child, path[1:])


def _sub_pattern(pattern: Any, path: list[str]) -> list[Any]:
    values = list(_at_path(pattern, path))
    return values


class _Walk:
    def __init__(self, profiles: Profiles, resource: JSON, out: list[Finding]) -> None:
        self.profiles = profiles
        self.resource = resource
        self.out = out

    # the values of a child element in a JSON object
    def items(self, rule: Rule, obj: Any, where: str) -> list[_Item]:
        if not isinstance(obj, dict):
            return []
        found: list[_Item] = []
        if rule.name.endswith("[x]"):
            base = rule.name[:-3]
            for key, value in obj.items():
                if key.startswith(base) and len(key) > len(base) and key[len(base)].isupper():
                    self._collect(found, key, value, obj.get("_" + key), key[len(base):], rule, where)
            return found
        value = obj.get(rule.name)
        shadow = obj.get("_" + rule.name)
        if value is None and shadow is None:
            return found
        type_code = rule.types[0] if len(rule.types) == 1 else ""
        self._collect(found, rule.name, value, shadow, type_code, rule, where)
        return found

    @staticmethod
    def _collect(found: list[_Item], key: str, value: Any, shadow: Any, type_code: str, rule: Rule,
                 where: str) -> None:
        if isinstance(value, list) or (value is None and isinstance(shadow, list)):
            values = value if isinstance(value, list) else [None] * len(shadow)
            shadows = shadow if isinstance(shadow, list) else []
            for i, item in enumerate(values):
                ext = shadows[i] if i < len(shadows) else None
                obj = item if isinstance(item, dict) else ext
                found.append(_Item(item, obj, type_code, f"{where}.{key}[{i}]"))
            return
        obj = value if isinstance(value, dict) else shadow
        found.append(_Item(value, obj, type_code, f"{where}.{key}"))

    def element(self, rule: Rule, value: Any, obj: Any, where: str, skip_binding: bool = False) -> None:
        """Checks of one value against its rule, then its children's rules."""
        if rule.has_fixed and value != rule.fixed:
            self.out.append(error("value", where, f"the value must be exactly {_show(rule.fixed)} "
                                                  f"(fixed by {rule.label}), not {_show(value)}"))
        if rule.has_pattern and not _pattern_matches(rule.pattern, value):
            self.out.append(error("value", where, f"the value must match the pattern {_show(rule.pattern)} "
                                                  f"of {rule.label}"))
        if rule.binding is not None and not skip_binding:
            self.binding(rule, value, where)
        if rule.target_types is not None and isinstance(value, dict):
            self.reference(rule, value, where)
        for invariant in rule.invariants:
            finding = invariant.check(value, rule.types[0] if len(rule.types) == 1 else rule.path,
                                      self.resource, where)
            if finding is not None:
                self.out.append(finding)
        if rule.active:
            self.children(rule, obj, where)
        elif rule.type_profiles and isinstance(obj, dict):
            for url in rule.type_profiles:
                compiled = self.profiles.get(url)
                if compiled is not None and compiled.root.active:
                    self.children(compiled.root, obj, where)
                    break

    def children(self, rule: Rule, obj: Any, where: str) -> None:
        for child in rule.active:
            items = self.items(child, obj, where)
            self.cardinality(child, items, where)
            if child.max == 0:
                continue
            if child.narrowed and child.types:
                allowed = {_cap(t) for t in child.types}
                for item in items:
                    if item.type_code not in allowed:
                        self.out.append(error("structure", item.where,
                                              f"{child.label} allows only {', '.join(child.types)} here"))
            matched: list[Rule | None] = [None] * len(items)
            if child.slices:
                matched = self.slice(child, items, where)
            for item, slice_rule in zip(items, matched, strict=True):
                # a slice with a binding of its own replaces the sliced element's for its items
                own = slice_rule is not None and slice_rule.binding is not None
                self.element(child, item.value, item.obj, item.where, skip_binding=own)
                if slice_rule is not None:
                    self.element(slice_rule, item.value, item.obj, item.where)

    def cardinality(self, rule: Rule, items: list[Any], where: str) -> None:
        count = len(items)
        if rule.max == 0 and count:
            self.out.append(error("structure", items[0].where, f"{rule.label} is not allowed here (max 0)"))
        elif rule.check_min and count < rule.min:
            what = f"slice {rule.slice_name!r} of {rule.path}" if rule.slice_name else rule.label
            at = f"{where}.{rule.name.removesuffix('[x]')}"
            self.out.append(error("required", at, f"{what} needs at least {rule.min}, found {count}"))
        elif rule.check_max and rule.max is not None and count > rule.max:
            what = f"slice {rule.slice_name!r} of {rule.path}" if rule.slice_name else rule.label
            self.out.append(error("structure", items[rule.max].where,
                                  f"{what} allows at most {rule.max}, found {count}"))

    def slice(self, rule: Rule, items: list[_Item], where: str) -> list[Rule | None]:
        matched: list[Rule | None] = []
        for item in items:
            found = None
            for candidate in rule.slices:
                if self.in_slice(rule, candidate, item):
                    found = candidate
                    break
            matched.append(found)
            if found is None and rule.slicing is not None and rule.slicing.rules == "closed":
                self.out.append(error("structure", item.where,
                                      f"{rule.label} is sliced closed and this item matches none of its slices "
                                      f"({', '.join(str(s.slice_name) for s in rule.slices)})"))
        for candidate in rule.slices:
            members = [item for item, m in zip(items, matched, strict=True) if m is candidate]
            self.cardinality(candidate, members, where)
        return matched

    def in_slice(self, sliced: Rule, candidate: Rule, item: _Item) -> bool:
        discriminators = sliced.slicing.discriminators if sliced.slicing is not None else [("value", "url")]
        if not discriminators:
            return False
        for kind, path in discriminators:
            if kind not in ("value", "pattern"):
                return False
            expected = candidate.discriminated.get(path)
            if expected is None:
                if path in candidate.discriminated:
                    return False
                expected = candidate.discriminated[path] = _discriminator(candidate, path)
                if expected is None:
                    return False
            mode, wanted = expected
            parts = [] if path == "$this" else path.split(".")
            values = list(_at_path(item.value, parts))
            if mode == "fixed":
                if not any(v == w for v in values for w in wanted):
                    return False
            elif not any(_pattern_matches(w, v) for v in values for w in wanted):
                return False
        return True

    def binding(self, rule: Rule, value: Any, where: str) -> None:
        assert rule.binding is not None
        strength, url = rule.binding
        codings: list[tuple[str | None, str]] = []
        if isinstance(value, str):
            codings = [(None, value)]
        elif isinstance(value, dict):
            if isinstance(value.get("code"), str) and "coding" not in value:
                codings = [(value.get("system") if isinstance(value.get("system"), str) else None, value["code"])]
            listed = value.get("coding")
            for coding in listed if isinstance(listed, list) else []:
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    system = coding.get("system")
                    codings.append((system if isinstance(system, str) else None, coding["code"]))
        else:
            return
        if not codings:
            if strength == "required":
                self.out.append(error("code-invalid", where, f"a code from the required value set {url} is needed"))
            return
        try:
            expansion = self.profiles.terminology.expand(url)
        except ExpansionError as exc:
            self.out.append(warning("not-supported", where,
                                    f"the {strength} binding to {url} could not be checked: {exc}"))
            return
        results = [expansion.contains(system, code) for system, code in codings]
        if any(r is True for r in results):
            return
        shown = ", ".join(f"{s}|{c}" if s else c for s, c in codings)
        if any(r is None for r in results):
            self.out.append(warning("code-invalid", where, f"whether {shown} is in {url} ({strength}) could not be "
                                                           "settled here"))
            return
        if strength == "required":
            self.out.append(error("code-invalid", where, f"{shown} is not in the required value set {url}"))
        else:
            self.out.append(warning("code-invalid", where,
                                    f"{shown} is not in the extensible value set {url}; use one of its codes when "
                                    "one fits"))

    def reference(self, rule: Rule, value: JSON, where: str) -> None:
        assert rule.target_types is not None
        reference = value.get("reference")
        target: str | None = None
        if isinstance(reference, str):
            if reference.startswith("#"):
                contained_list = self.resource.get("contained")
                for contained in contained_list if isinstance(contained_list, list) else []:
                    if isinstance(contained, dict) and f"#{contained.get('id')}" == reference:
                        target = contained.get("resourceType")
            elif not reference.startswith("urn:"):
                parts = reference.split("/_history/")[0].rstrip("/").split("/")
                if len(parts) >= 2:
                    target = parts[-2]
        if target is None and isinstance(value.get("type"), str):
            target = value["type"]
        if target is not None and target not in rule.target_types:
            self.out.append(error("structure", where, f"{rule.label} must refer to "
                                                      f"{' or '.join(sorted(rule.target_types))}, not {target}"))


def _discriminator(slice_rule: Rule, path: str) -> tuple[str, list[Any]] | None:
    """What a slice requires at a discriminator path: ('fixed' | 'pattern', values)."""
    parts = [] if path == "$this" else path.split(".")
    node: Rule | None = slice_rule
    for i, part in enumerate(parts):
        assert node is not None
        if node.has_fixed:
            return "fixed", _sub_pattern(node.fixed, parts[i:])
        if node.has_pattern:
            return "pattern", _sub_pattern(node.pattern, parts[i:])
        child = node.children.get(part)
        if child is None:
            if part == "url" and i == len(parts) - 1 and node.type_profiles:
                return "fixed", [strip_version(u) for u in node.type_profiles]
            return None
        node = child
    assert node is not None
    if node.has_fixed:
        return "fixed", [node.fixed]
    if node.has_pattern:
        return "pattern", [node.pattern]
    if parts == ["url"] and slice_rule.type_profiles:
        return "fixed", [strip_version(u) for u in slice_rule.type_profiles]
    return None


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


_default: Profiles | None = None
_default_lock = threading.Lock()


def default_profiles() -> Profiles:
    """The process-wide set of compiled profiles."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Profiles()
    return _default
