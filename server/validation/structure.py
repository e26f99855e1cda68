"""Strict structural checks of FHIR R4 JSON, compiled from HL7's definitions.

The pydantic models (fhir.resources, R4B) coerce what they are given: ``"active": "yes"``
becomes a boolean, numbers may arrive as strings, and a required-bound code such as
``"gender": "bogus"`` is any string. Data written that way cannot be read back by stricter
FHIR clients, so every resource is also checked here, against the R4 element table in
``profiles/r4/element-definitions.json`` and the required bindings in
``profiles/r4/required-bindings.json`` (both vendored by ``scripts/vendor_r4_definitions.py``).

Both files are compiled once into a tree of per-type nodes (JSON property name -> field, with
its type checker, cardinality and allowed codes resolved), so a check is a single walk over the
JSON with dictionary look-ups and precompiled regexes: no per-call interpretation of the
definitions. The checks are those of the FHIR JSON format and the element definitions:

* unknown properties, with ``_name`` siblings (id and extensions of a primitive value)
  allowed only beside primitives, and ``resourceType`` only at the root of a resource;
  ``contained`` resources, ``Bundle.entry.resource`` and other ``Resource``-typed elements
  are checked against the definition their own ``resourceType`` names;
* cardinality: arrays exactly where ``max`` is ``*``; no ``null``, ``[]``, ``{}`` or ``""``
  (``null`` only as the placeholder the JSON format uses in arrays of primitives whose
  ``_name`` array holds the extensions); ``min`` 1 elements present in every object;
* choice elements: at most one ``name[x]`` variant (one if required), named with one of the
  element's types;
* primitive values: the JSON kind of the type (boolean, integer in range, number, string)
  and, for strings, a full match of the type's R4 regex;
* required bindings, for elements of resources and of datatypes wherever they appear;
* extensions: a ``url``, and either a ``value[x]`` or nested extensions, not both.

Resource types outside the table but defined by R4 (``otherResources``) are not checked;
any other ``resourceType`` is an error. Invariants (FHIRPath constraints), reference targets,
profiles and non-required bindings are out of scope here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from carebridge import paths

IssueCode = Literal["structure", "value", "required", "code-invalid"]

#: Element types whose children the definitions list under the element's own path.
_NESTED_TYPES: Final = frozenset({"BackboneElement", "Element"})
_CODED_TYPES: Final = frozenset({"code", "Coding", "CodeableConcept"})
_JSON_KIND_NAMES: Final[Mapping[str, str]] = {
    "boolean": "a JSON boolean (true or false)",
    "integer": "a JSON integer",
    "number": "a JSON number",
    "string": "a JSON string",
}


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a resource, shaped like an OperationOutcome issue.

    ``code`` is a FHIR issue-type code; ``expression`` locates the element in FHIRPath style,
    using the JSON property names (``Patient.name[0].given[1]``, ``Observation.valueQuantity``).
    """

    code: IssueCode
    expression: str
    diagnostics: str
    severity: Literal["error"] = "error"


# --------------------------------------------------------------------------
# Compiled definitions
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Primitive:
    """A primitive type: its JSON kind and, for strings, its compiled R4 regex."""

    name: str
    kind: str
    match: Callable[[str], object] | None
    minimum: int
    maximum: int
    extensible: bool


@dataclass(slots=True, eq=False)
class _Field:
    """One JSON property of a node: a non-choice element, or one variant of a choice."""

    key: str
    element: str
    type: str
    array: bool
    cardinality: str
    prohibited: bool
    primitive: _Primitive | None = None
    node: _Node | None = None
    resource: bool = False
    codes: frozenset[str] | None = None
    codings: Mapping[str, frozenset[str]] | None = None
    value_set: str = ""


@dataclass(slots=True, eq=False)
class _Node:
    """An object in FHIR JSON: a resource, a datatype or a backbone element."""

    name: str
    fields: dict[str, _Field] = field(default_factory=dict)
    #: (element, the JSON properties that satisfy it) for each element with min >= 1
    required: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: (element, the JSON properties of its variants) for each choice element
    choices: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: (property prefix, element, types) to explain a misnamed choice variant
    choice_bases: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    resource: bool = False
    extension: bool = False
    #: the properties of Extension.value[x]
    value_keys: tuple[str, ...] = ()


def _choice_key(base: str, type_code: str) -> str:
    return base + type_code[0].upper() + type_code[1:]


def _compile_primitive(name: str, spec: Mapping[str, Any]) -> _Primitive:
    pattern = spec.get("regex")
    match: Callable[[str], object] | None = None
    if spec["json"] == "string" and isinstance(pattern, str):
        if name == "base64Binary":
            # R4's `(\s*([0-9a-zA-Z\+/=]){4}\s*)+` backtracks exponentially on long
            # wrapped input that fails; this pattern accepts exactly the same strings.
            pattern = r"\s*(?:[0-9a-zA-Z+/=]{4}\s*)+"
        # FHIR regexes follow XML Schema / Java, where \s and \S are ASCII classes:
        # without re.ASCII a no-break space would not count as \S and valid strings fail.
        match = re.compile(pattern, re.ASCII).fullmatch
    return _Primitive(
        name=name,
        kind=spec["json"],
        match=match,
        minimum=int(spec.get("min", 0)),
        maximum=int(spec.get("max", 0)),
        extensible=spec.get("extensions", True) is not False,
    )


class _Compiler:
    """Turns the element table and the required bindings into linked :class:`_Node` trees."""

    def __init__(self, definitions: Mapping[str, Any], bindings: Mapping[str, Any]) -> None:
        self.primitives = {name: _compile_primitive(name, spec) for name, spec in definitions["primitives"].items()}
        self.nodes: dict[str, _Node] = {}
        self.links: list[tuple[_Field, str]] = []
        for section in ("resources", "datatypes"):
            for type_name, elements in definitions[section].items():
                bound = self._bindings(bindings.get(section, {}).get(type_name, []))
                self._compile_type(type_name, elements, bound, resource=section == "resources")
        for compiled, target in self.links:
            compiled.node = self.nodes[target]
        self.resources = {name: self.nodes[name] for name in definitions["resources"]}

    @staticmethod
    def _bindings(entries: list[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        """Complete required bindings by element path relative to their type."""
        return {
            entry["path"].partition(".")[2]: entry
            for entry in entries
            if entry.get("complete") and isinstance(entry.get("valueSet"), str)
        }

    def _compile_type(
        self,
        type_name: str,
        elements: Mapping[str, Mapping[str, Any]],
        bindings: Mapping[str, Mapping[str, Any]],
        *,
        resource: bool,
    ) -> None:
        def node_name(relative: str) -> str:
            return f"{type_name}.{relative}" if relative else type_name

        root = _Node(type_name, resource=resource, extension=type_name == "Extension")
        self.nodes[type_name] = root
        for relative, spec in elements.items():
            if set(spec["types"]) <= _NESTED_TYPES and "ref" not in spec:
                self.nodes[node_name(relative)] = _Node(node_name(relative))
        for relative, spec in elements.items():
            parent, _, name = relative.rpartition(".")
            owner = self.nodes[node_name(parent)]
            types: list[str] = spec["types"]
            cardinality = f"{spec['min']}..{spec['max']}"
            prohibited = spec["max"] == "0"
            array = spec["max"] != "1" and not prohibited
            keys: list[str] = []
            if name.endswith("[x]"):
                base = name[:-3]
                owner.choice_bases.append((base, name, tuple(types)))
                variants = [(_choice_key(base, t), t) for t in types]
            else:
                variants = [(name, types[0])]
            for key, type_code in variants:
                compiled = _Field(key, name, type_code, array, cardinality, prohibited)
                if "ref" in spec:
                    self.links.append((compiled, node_name(spec["ref"])))
                elif type_code in _NESTED_TYPES:
                    self.links.append((compiled, node_name(relative)))
                elif type_code == "Resource":
                    compiled.resource = True
                elif type_code in self.primitives:
                    compiled.primitive = self.primitives[type_code]
                else:
                    self.links.append((compiled, spec.get("profiles", {}).get(type_code, type_code)))
                binding = bindings.get(relative)
                if binding is not None and type_code in _CODED_TYPES:
                    self._bind(compiled, binding)
                owner.fields[key] = compiled
                keys.append(key)
                if compiled.primitive is not None:
                    keys.append("_" + key)
            if len(variants) > 1:
                owner.choices.append((name, tuple(keys)))
            if spec["min"] >= 1:
                owner.required.append((name, tuple(keys)))
            if root.extension and relative == "value[x]":
                root.value_keys = tuple(keys)

    @staticmethod
    def _bind(compiled: _Field, binding: Mapping[str, Any]) -> None:
        codes: Mapping[str, list[str]] = binding["codes"]
        compiled.value_set = binding["valueSet"]
        if compiled.type == "code":
            compiled.codes = frozenset(code for system_codes in codes.values() for code in system_codes)
        else:
            compiled.codings = {system: frozenset(system_codes) for system, system_codes in codes.items()}


# --------------------------------------------------------------------------
# The validator
# --------------------------------------------------------------------------


class StructureValidator:
    """Checks FHIR R4 JSON resources against the vendored element definitions.

    Build it once (it compiles both definition files; :func:`default_validator` shares one
    per process) and call :meth:`check` for each resource. The validator holds no state
    between calls and is safe to share between threads.
    """

    def __init__(self, definitions_dir: Path | None = None) -> None:
        directory = paths.R4_DEFINITIONS if definitions_dir is None else definitions_dir
        definitions = orjson.loads((directory / "element-definitions.json").read_bytes())
        bindings = orjson.loads((directory / "required-bindings.json").read_bytes())
        compiler = _Compiler(definitions, bindings)
        self._resources: Mapping[str, _Node] = compiler.resources
        self._other_resources = frozenset(definitions.get("otherResources", ()))
        self._element = compiler.nodes["Element"]

    @property
    def resource_types(self) -> frozenset[str]:
        """The resource types whose structure is checked."""
        return frozenset(self._resources)

    def check(self, resource: dict[str, Any]) -> list[Issue]:
        """Every structural problem of ``resource``; an empty list means it is valid."""
        issues: list[Issue] = []
        if not isinstance(resource, dict):
            issues.append(Issue("structure", "Resource", "A resource must be a JSON object."))
            return issues
        try:
            self._resource(resource, None, issues)
        except RecursionError:
            # A JSON parser accepts deeper nesting (orjson: 1024 levels) than the walk can follow.
            issues.append(Issue("structure", "Resource", "The resource is nested too deeply to check."))
        return issues

    # Resources and objects

    def _resource(self, value: Any, expression: str | None, issues: list[Issue]) -> None:
        where = expression or "Resource"
        if not isinstance(value, dict):
            issues.append(Issue("structure", where, "A resource must be a JSON object."))
            return
        resource_type = value.get("resourceType")
        if not isinstance(resource_type, str):
            if resource_type is None:
                issues.append(Issue("required", where, "The resource has no resourceType."))
            else:
                issues.append(Issue("structure", f"{where}.resourceType", "resourceType must be a string."))
            return
        node = self._resources.get(resource_type)
        if node is None:
            if resource_type not in self._other_resources:
                issues.append(
                    Issue(
                        "structure",
                        f"{where}.resourceType",
                        f"'{resource_type}' is not a FHIR R4 resource type.",
                    )
                )
            return
        self._object(node, value, expression or resource_type, issues)

    def _object(self, node: _Node, obj: dict[str, Any], expression: str, issues: list[Issue]) -> None:
        if not obj:
            issues.append(
                Issue(
                    "structure",
                    expression,
                    "An empty object is not valid FHIR JSON: an element must have a value or children.",
                )
            )
            return
        fields = node.fields
        for key, value in obj.items():
            found = fields.get(key)
            if found is None:
                self._unmatched(node, obj, key, value, expression, issues)
                continue
            where = f"{expression}.{key}"
            if found.prohibited:
                issues.append(Issue("structure", where, f"{node.name} does not allow {found.element} (max 0)."))
                continue
            if found.array:
                if type(value) is not list:
                    if self._present(value, where, issues):
                        issues.append(
                            Issue(
                                "structure",
                                where,
                                f"{node.name}.{found.element} has cardinality {found.cardinality}, "
                                "so its value must be a JSON array.",
                            )
                        )
                    continue
                if not value:
                    issues.append(
                        Issue(
                            "structure",
                            where,
                            "An empty array is not valid FHIR JSON; leave the element out instead.",
                        )
                    )
                    continue
                extensions = obj.get("_" + key) if found.primitive is not None else None
                for index, item in enumerate(value):
                    if item is None and _has_item(extensions, index):
                        continue  # no value, only the id or extensions in `_key`
                    self._value(found, item, f"{where}[{index}]", issues)
            elif type(value) is list:
                issues.append(
                    Issue(
                        "structure",
                        where,
                        f"{node.name}.{found.element} has cardinality {found.cardinality}, "
                        "so its value must not be a JSON array.",
                    )
                )
            else:
                self._value(found, value, where, issues)
        if node.required:
            for element, keys in node.required:
                if not any(key in obj for key in keys):
                    issues.append(
                        Issue(
                            "required",
                            f"{expression}.{element.removesuffix('[x]')}",
                            f"{node.name}.{element} is required (min 1) but missing.",
                        )
                    )
        if node.choices:
            for element, keys in node.choices:
                if sum(key in obj for key in keys if key[0] != "_") > 1:
                    # in document order, so that the issue points at the extra one
                    present = [key for key in obj if key in keys and key[0] != "_"]
                    issues.append(
                        Issue(
                            "structure",
                            f"{expression}.{present[1]}",
                            f"{node.name}.{element} takes one value, but has {len(present)}: {', '.join(present)}.",
                        )
                    )
        if node.extension:
            self._extension(node, obj, expression, issues)

    def _unmatched(
        self, node: _Node, obj: dict[str, Any], key: str, value: Any, expression: str, issues: list[Issue]
    ) -> None:
        """A property that is not an element: a primitive's ``_name`` sibling, the
        ``resourceType`` of a resource, a misnamed choice variant or an unknown element."""
        if key == "resourceType" and node.resource:
            return
        where = f"{expression}.{key}"
        if type(key) is not str:  # only from a caller's dict; JSON keys are strings
            issues.append(Issue("structure", where, f"Property names must be strings, not {key!r}."))
            return
        if key.startswith("_"):
            sibling = node.fields.get(key[1:])
            if sibling is not None and sibling.primitive is not None:
                self._primitive_element(sibling, obj.get(key[1:]), value, where, issues)
                return
            if sibling is not None:
                issues.append(
                    Issue(
                        "structure",
                        where,
                        f"'{key}' is only valid beside a primitive value, and {node.name}.{sibling.key} "
                        f"is a {sibling.type}.",
                    )
                )
                return
        for base, element, types in node.choice_bases:
            if key.startswith(base) and len(key) > len(base) and key[len(base)].isupper():
                issues.append(
                    Issue(
                        "structure",
                        where,
                        f"'{key}' is not a variant of {node.name}.{element}, whose types are {', '.join(types)}.",
                    )
                )
                return
        issues.append(Issue("structure", where, f"Unknown element '{key}': {node.name} has no such element."))

    def _primitive_element(
        self, primitive: _Field, value: Any, extensions: Any, where: str, issues: list[Issue]
    ) -> None:
        """The ``_name`` sibling of a primitive: the value's id and extensions, an object
        (or, beside an array, an array of objects and nulls of the same length)."""
        assert primitive.primitive is not None
        if not primitive.primitive.extensible:
            issues.append(Issue("structure", where, f"{primitive.type} values cannot have an id or extensions."))
            return
        if primitive.prohibited:
            issues.append(Issue("structure", where, f"{primitive.element} is not allowed here (max 0)."))
            return
        if not primitive.array:
            if type(extensions) is list:
                issues.append(
                    Issue(
                        "structure",
                        where,
                        f"{primitive.element} is not repeating, so this must not be an array.",
                    )
                )
            elif self._present(extensions, where, issues):
                self._element_object(extensions, where, issues)
            return
        if type(extensions) is not list:
            if self._present(extensions, where, issues):
                issues.append(Issue("structure", where, f"{primitive.element} repeats, so this must be a JSON array."))
            return
        values = value if type(value) is list else None
        if values is not None and len(values) != len(extensions):
            issues.append(
                Issue(
                    "structure",
                    where,
                    f"'{where.rpartition('.')[2]}' has {len(extensions)} items and "
                    f"'{primitive.key}' {len(values)}; they must pair up.",
                )
            )
        for index, item in enumerate(extensions):
            if item is None:
                if values is None or index >= len(values) or values[index] is None:
                    issues.append(
                        Issue(
                            "structure",
                            f"{where}[{index}]",
                            "null is only valid here when the matching value is present.",
                        )
                    )
                continue
            self._element_object(item, f"{where}[{index}]", issues)

    def _element_object(self, value: Any, where: str, issues: list[Issue]) -> None:
        if type(value) is dict:
            self._object(self._element, value, where, issues)
        else:
            issues.append(
                Issue("structure", where, "The id and extensions of a primitive value must be a JSON object.")
            )

    @staticmethod
    def _present(value: Any, where: str, issues: list[Issue]) -> bool:
        """False, with an issue, for the JSON values FHIR never allows: null, "", [] and {}."""
        if value is None:
            issues.append(Issue("structure", where, "null is not valid FHIR JSON; leave the element out instead."))
            return False
        if value == "" or value == [] or value == {}:
            issues.append(
                Issue(
                    "structure",
                    where,
                    f"An empty {'string' if value == '' else 'array' if value == [] else 'object'} "
                    "is not valid FHIR JSON; leave the element out instead.",
                )
            )
            return False
        return True

    def _extension(self, node: _Node, obj: dict[str, Any], expression: str, issues: list[Issue]) -> None:
        """ext-1: an extension has a value[x] or nested extensions, never both nor neither."""
        has_value = any(key in obj for key in node.value_keys)
        has_children = "extension" in obj
        if has_value and has_children:
            issues.append(
                Issue(
                    "structure",
                    expression,
                    "An extension must have either a value[x] or nested extensions, not both.",
                )
            )
        elif not has_value and not has_children:
            issues.append(Issue("required", expression, "An extension must have a value[x] or nested extensions."))

    # Values

    def _value(self, found: _Field, value: Any, where: str, issues: list[Issue]) -> None:
        primitive = found.primitive
        if primitive is not None:
            if value is None or value == "":
                self._present(value, where, issues)
            elif (
                self._primitive(primitive, value, where, issues)
                and found.codes is not None
                and value not in found.codes
            ):
                issues.append(
                    Issue(
                        "code-invalid",
                        where,
                        f"'{value}' is not a code of the required value set {found.value_set}.",
                    )
                )
            return
        if type(value) is not dict:
            if self._present(value, where, issues):
                issues.append(
                    Issue("structure", where, f"A {found.type} must be a JSON object, not {_json_name(value)}.")
                )
            return
        if found.resource:
            self._resource(value, where, issues)
            return
        node = found.node
        assert node is not None
        self._object(node, value, where, issues)
        if found.codings is not None:
            self._check_coded(found, value, where, issues)

    @staticmethod
    def _primitive(primitive: _Primitive, value: Any, where: str, issues: list[Issue]) -> bool:
        """Whether ``value`` is a valid JSON value of the primitive type (else an issue)."""
        kind = primitive.kind
        value_type = type(value)
        if kind == "string":
            if value_type is not str:
                problem = f"{primitive.name} must be {_JSON_KIND_NAMES[kind]}, not {_json_name(value)}."
            elif primitive.match is not None and primitive.match(value) is None:
                shown = value if len(value) <= 60 else value[:57] + "..."
                problem = f"'{shown}' is not a valid {primitive.name}: it does not match the R4 regex."
            else:
                return True
        elif kind == "boolean":
            if value_type is bool:
                return True
            problem = f"{primitive.name} must be {_JSON_KIND_NAMES[kind]}, not {_json_name(value)}."
        elif kind == "integer":
            if value_type is not int:
                problem = f"{primitive.name} must be {_JSON_KIND_NAMES[kind]}, not {_json_name(value)}."
            elif primitive.minimum <= value <= primitive.maximum:
                return True
            else:
                problem = f"{value} is out of range for {primitive.name} ({primitive.minimum} to {primitive.maximum})."
        else:  # number
            if value_type is int or (value_type is float and math.isfinite(value)):
                return True
            problem = f"{primitive.name} must be {_JSON_KIND_NAMES['number']}, not {_json_name(value)}."
        issues.append(Issue("value", where, problem))
        return False

    @staticmethod
    def _check_coded(found: _Field, value: dict[str, Any], where: str, issues: list[Issue]) -> None:
        """A Coding, or one of the codings of a CodeableConcept, must be in the value set."""
        codings = found.codings
        assert codings is not None

        def known(coding: Any) -> bool:
            if type(coding) is not dict:
                return False
            system = coding.get("system")
            allowed = codings.get(system) if type(system) is str else None
            code = coding.get("code")
            return allowed is not None and type(code) is str and code in allowed

        if found.type == "Coding":
            if not known(value):
                issues.append(
                    Issue(
                        "code-invalid",
                        where,
                        f"{_coding_text(value)} is not in the required value set {found.value_set}.",
                    )
                )
            return
        candidates = value.get("coding")
        if type(candidates) is list and any(known(coding) for coding in candidates):
            return
        if type(candidates) is list and candidates:
            shown = ", ".join(_coding_text(c) for c in candidates if type(c) is dict)
            message = f"None of the codings ({shown}) is in the required value set {found.value_set}."
        else:
            message = f"No coding given; a code from the required value set {found.value_set} is needed."
        issues.append(Issue("code-invalid", where, message))


def _has_item(values: Any, index: int) -> bool:
    return type(values) is list and index < len(values) and values[index] is not None


def _coding_text(coding: Mapping[str, Any]) -> str:
    system, code = coding.get("system"), coding.get("code")
    if system is None:
        return f"code '{code}' without a system"
    return f"{system}|{code}"


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) is int or type(value) is float:
        return "a number"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "an array"
    return "an object"


@cache
def default_validator() -> StructureValidator:
    """The process-wide validator over ``carebridge.paths.R4_DEFINITIONS``, built on first use."""
    return StructureValidator()
