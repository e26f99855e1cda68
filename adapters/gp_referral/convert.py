"""One HL7 v2 referral to one FHIR transaction Bundle, or to the located reasons it cannot be."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.common.bundle import BundleBuilder
from adapters.common.dates import BadDate, instant
from adapters.common.identity import condition
from adapters.common.landing import Landable
from adapters.common.provenance import RAW_INPUT, provenance, provenance_id, raw_document
from adapters.common.result import Problem
from adapters.gp_referral import hl7
from adapters.gp_referral.mapping import Mapping, Run, evaluate, load, segments_for

CONTENT_TYPE = "x-application/hl7-v2+er7"


@dataclass
class Converted:
    """A message ready to land: its Bundle, or its problems; header fields for the ACK."""

    raw: bytes
    message: hl7.Message | None = None
    problems: list[Problem] = field(default_factory=list)
    bundle: dict[str, Any] | None = None
    must_exist: str | None = None  # conditional URL of the referral an I13/I14/I15 acts on
    key: str = ""
    provenance_id: str = ""
    #: the landable with its plan, when planned ahead of the write (see ``ingest.prepare``)
    planned: Landable | None = None

    #: MSH-10, kept when the parsed message is not (see ``ingest.pack``)
    control: str = ""

    @property
    def control_id(self) -> str:
        return self.message.get("MSH", 10) if self.message else self.control

    def landable(self) -> Landable:
        assert self.bundle is not None
        return Landable(self.key, self.bundle["entry"], self.must_exist, ("Provenance", self.provenance_id))

    @property
    def ok(self) -> bool:
        return self.bundle is not None and not self.problems


def parse(raw: bytes) -> tuple[hl7.Message | None, list[Problem]]:
    try:
        return hl7.parse(hl7.decode(raw)), []
    except hl7.UnknownCharset as exc:
        return None, [Problem(f"character set {exc} is not supported", "MSH", 1, 18, code="203", reject=True)]
    except hl7.NotHl7 as exc:
        return None, [Problem(f"not an HL7 v2 message: {exc}", code="100", reject=True)]
    except UnicodeDecodeError as exc:
        return None, [Problem(f"bytes do not match MSH-18: {exc}", "MSH", 1, 18, code="102", reject=True)]


def _header(msg: hl7.Message, mapping: Mapping) -> list[Problem]:
    accepts = mapping.accepts
    problems = []
    kind, trigger, version = msg.get("MSH", 9, 1), msg.get("MSH", 9, 2), msg.get("MSH", 12)
    if kind not in accepts["types"]:
        problems.append(Problem(f"message type {kind or '(none)'!r} is not accepted here (only REF)",
                                "MSH", 1, 9, 1, "200", True))
    elif trigger not in accepts["triggers"]:
        problems.append(Problem(f"trigger {trigger or '(none)'!r} is not accepted (I12, I13, I14, I15)",
                                "MSH", 1, 9, 2, "201", True))
    if version not in accepts["versions"]:
        problems.append(Problem(f"HL7 version {version or '(none)'!r} is not supported (2.3 to 2.5.1)",
                                "MSH", 1, 12, 0, "203", True))
    if not msg.get("MSH", 10):
        problems.append(Problem("required field is missing (message control id)", "MSH", 1, 10, 0, "101", True))
    return problems


def convert(raw: bytes, mapping: Mapping | None = None) -> Converted:
    mapping = mapping or load()
    msg, problems = parse(raw)
    out = Converted(raw, msg, problems)
    if msg is None:
        return out
    out.problems = _header(msg, mapping)
    if out.problems:
        return out
    sender_app, sender = msg.get("MSH", 3), msg.get("MSH", 4)
    out.key = f"{sender or sender_app}-{msg.get('MSH', 10)}"
    try:
        received = instant(msg.get("MSH", 7))
    except BadDate as exc:
        out.problems.append(Problem(str(exc), "MSH", 1, 7, 0, "102"))
        return out
    if msg.first("RF1") is None:
        out.problems.append(Problem("the RF1 segment is missing", "RF1", 1, 0, 0, "100"))
        return out
    trigger = msg.get("MSH", 9, 2)
    run = Run(mapping, msg, {"trigger": trigger, "received": received})
    builder = BundleBuilder()
    # identities first, so that any template can refer to any resource
    planned: list[tuple[dict[str, Any], hl7.Segment, str, str, bool]] = []
    for spec in mapping.spec["resources"]:
        for seg in segments_for(run, spec):
            run.segment = seg
            value = evaluate(run, spec["identity"]["value"])
            run.segment = None
            if value is None:
                continue
            system = spec["identity"]["system"]
            full_url, new = builder.claim(spec["resourceType"], system, str(value))
            run.refs.setdefault(spec["key"], [])
            if full_url not in run.refs[spec["key"]]:
                run.refs[spec["key"]].append(full_url)
            planned.append((spec, seg, system, str(value), new))
            if spec["key"] == "referral" and trigger in mapping.accepts["must_exist"]:
                out.must_exist = condition("ServiceRequest", system, str(value))
    built: list[str] = []
    for spec, seg, system, value, new in planned:
        run.segment = seg
        resource = evaluate(run, spec["template"])
        run.segment = None
        if new and resource:
            full_url = builder.claim(spec["resourceType"], system, value)[0]
            builder.put_conditional(full_url, resource, system, value)
            built.append(full_url)
    out.problems.extend(run.problems)
    if out.problems:
        return out
    if "referral" not in run.refs:
        out.problems.append(Problem("required field is missing (referral id)", "RF1", 1, 6, 0, "101"))
        return out
    doc_url, _ = builder.claim("DocumentReference", RAW_INPUT, out.key)
    recorded = received.isoformat(timespec="seconds")
    builder.put_conditional(doc_url, raw_document(
        raw, CONTENT_TYPE, out.key, f"{msg.get('MSH', 9, 1)}^{trigger} {msg.get('MSH', 10)} from "
        f"{sender_app}/{sender}", recorded), RAW_INPUT, out.key)
    agent_ref = run.refs.get("practice")
    agent: dict[str, Any] = {"who": {"reference": agent_ref[0]} if agent_ref else {"display": sender or sender_app}}
    out.provenance_id = provenance_id(out.key, raw, mapping.version)
    prov = provenance(out.provenance_id, out.key, mapping.version, [*built, doc_url], doc_url, recorded, agent)
    builder.put(f"urn:uuid:{prov['id']}", prov)
    out.bundle = builder.bundle()
    return out
