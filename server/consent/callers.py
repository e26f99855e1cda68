"""Who is asking, in the terms the consent model decides by (DESIGN.md, 'Who sees what').

The token says who the caller is; this module sorts that into the kinds of caller the
rules treat differently. The ``fhirUser`` decides first, because it is the person being
served: a carer portal run by the trust asserts RelatedPersons, and those carers must not
inherit the trust's own access.

- ``internal``: the product's own processes (ingest, demo data, reindex) and development
  tokens minted without an organisation or user; they see the whole store.
- ``service_user``: ``fhirUser`` is a Patient: their own compartment, less what a carer
  told the team in confidence.
- ``carer``: ``fhirUser`` is a RelatedPerson: only what the service user's Consents share
  with that RelatedPerson, less carer-confidential information.
- ``staff``: a Practitioner (or a backend system) of an organisation. The organisation
  that holds a record (its custodian: the trust, or the local authority for social care
  records) sees it for direct care; everyone else sees what Consents share with them.
- ``break_glass``: staff with purpose BTG or ETREAT and a stated reason: they may read
  what they would otherwise not see, and every such access is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from server.consent.context import AccessContext

#: the trust: custodian of every record that does not name another custodian
DEFAULT_CUSTODIAN = "RT5"
#: ``meta.tag`` naming the organisation (ODS code) that holds a record, e.g. a local
#: authority for the records of its social care feed
CUSTODIAN_TAG_SYSTEM = "https://fhir.carebridge.example/CodeSystem/custodian"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CAREBRIDGE_SECURITY = "https://fhir.carebridge.example/CodeSystem/security"
#: labels of information that must never reach the service user or their family
NOT_FOR_PATIENT_LABELS = ((V3_ACT_CODE, "NOPAT"), (CAREBRIDGE_SECURITY, "carer-confidential"))
#: purposes under which the custodian's staff see its records without a Consent
DIRECT_CARE_PURPOSES = frozenset({"TREAT", "ETREAT", "BTG", "CAREMGT", "COC"})
BREAK_GLASS_PURPOSES = frozenset({"BTG", "ETREAT"})
#: the purpose assumed when a token names none
DEFAULT_PURPOSE = "TREAT"


@dataclass(frozen=True)
class Caller:
    kind: str
    #: the organisation's ODS code (staff)
    organization: str | None
    purpose: str
    #: the person's reference (``Practitioner/x``, ``RelatedPerson/y``, ``Patient/z``)
    user: str | None

    @property
    def internal(self) -> bool:
        return self.kind == "internal"

    @property
    def break_glass(self) -> bool:
        return self.kind == "break_glass"

    @property
    def direct_care(self) -> bool:
        return self.kind == "staff" and self.purpose in DIRECT_CARE_PURPOSES

    @property
    def patient_facing(self) -> bool:
        """Service users and carers: kept from carer-confidential information."""
        return self.kind in ("service_user", "carer")


@lru_cache(maxsize=4096)
def caller_of(ctx: AccessContext) -> Caller:
    user = ctx.fhir_user
    user_type = user.split("/", 1)[0] if user and "/" in user else None
    purpose = (ctx.purpose_of_use or DEFAULT_PURPOSE).upper()
    org = ctx.organization.upper() if ctx.organization else None
    if user_type == "Patient":
        kind = "service_user"
    elif user_type == "RelatedPerson":
        kind = "carer"
    elif org is None and user is None:
        kind = "internal"
    elif purpose in BREAK_GLASS_PURPOSES and (ctx.break_glass_reason or "").strip() and user_type in (
        "Practitioner", "PractitionerRole",
    ):
        kind = "break_glass"
    else:
        kind = "staff"
    return Caller(kind=kind, organization=org, purpose=purpose, user=user)
