"""The access context: who is asking and what their token grants, carried by every call."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.auth.scopes import Scope, parse_scopes


@dataclass(frozen=True)
class AccessContext:
    client_id: str
    scopes: tuple[Scope, ...]
    organization: str | None = None
    #: the user the client acts for, as a reference (``Practitioner/abc``)
    fhir_user: str | None = None
    purpose_of_use: str | None = None
    #: the reason a clinician gave for breaking the glass (purpose ``BTG`` or ``ETREAT``)
    break_glass_reason: str | None = None
    #: the launch patient for ``patient/`` scopes (a Patient id)
    patient: str | None = None
    #: not part of who is asking: contexts of one caller compare equal across requests,
    #: so decisions cached by caller (server.consent.callers.caller_of) are reused
    request_id: str | None = field(default=None, compare=False)
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def author(self) -> str:
        """How writes are attributed in the version table."""
        return f"{self.client_id}|{self.fhir_user or ''}"

    @classmethod
    def system(cls, client_id: str = "carebridge", scope: str = "system/*.cruds") -> AccessContext:
        """A context for the product's own processes (ingest, demo data, reindex)."""
        return cls(client_id=client_id, scopes=parse_scopes(scope))
