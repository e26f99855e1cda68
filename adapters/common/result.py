"""What one input record came to: accepted with what it wrote, or rejected with located problems."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """A located reason; ``segment``/``sequence``/``field`` follow HL7 ERR-2 where they apply."""

    reason: str
    segment: str = ""
    sequence: int = 1
    field: int = 0
    component: int = 0
    code: str = "207"  # HL7 table 0357
    reject: bool = False  # True: the message cannot be processed at all (AR), else content error (AE)

    @property
    def where(self) -> str:
        if not self.segment:
            return "message"
        spot = f"{self.segment}-{self.field}" if self.field else self.segment
        if self.component:
            spot += f".{self.component}"
        return spot if self.sequence <= 1 else f"{spot} (segment {self.sequence})"

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class Outcome:
    """One message's result, the thing every front end (CLI, MLLP, check) reports."""

    key: str
    accepted: bool
    problems: list[Problem] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # fullUrl or type -> "201 Created"/"200 OK"
    created: int = 0

    @property
    def rejected_outright(self) -> bool:
        return any(p.reject for p in self.problems)
