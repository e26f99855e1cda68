"""ACK messages (HL7 v2.5 ch. 2, original mode): AA landed, AE content error, AR cannot process.

Built by hand: an ACK is three short segments, and it must be answerable even for bytes
that no parser accepts (hl7apy cannot build a reply to a message it could not read).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

from adapters.common.result import Problem
from adapters.gp_referral.hl7 import Message

_counter = itertools.count(1)
_SEVERITY = "E"
_TEXT = {"100": "Segment sequence error", "101": "Required field missing", "102": "Data type error",
         "103": "Table value not found", "200": "Unsupported message type", "201": "Unsupported event code",
         "203": "Unsupported version id", "204": "Unknown key identifier", "207": "Application internal error"}


def _escape(text: str) -> str:
    return (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
            .replace("~", "\\R\\").replace("\r", " ").replace("\n", " "))


def ack(message: Message | None, problems: list[Problem], *, application: str = "CAREBRIDGE",
        facility: str = "RT5") -> bytes:
    code = "AA" if not problems else ("AR" if any(p.reject for p in problems) else "AE")
    get = message.get if message else (lambda *a: "")
    now = datetime.now(ZoneInfo("Europe/London")).strftime("%Y%m%d%H%M%S%z")
    version = get("MSH", 12) or "2.5"
    trigger = get("MSH", 9, 2)
    segments = [
        f"MSH|^~\\&|{application}|{facility}|{get('MSH', 3)}|{get('MSH', 4)}|{now}||ACK^{trigger}^ACK|"
        f"ACK{now[:14]}{next(_counter):06d}|P|{version}",
        f"MSA|{code}|{get('MSH', 10)}",
    ]
    for p in problems:
        location = f"{p.segment}^{p.sequence}^{p.field}" + (f"^1^{p.component}" if p.component else "") \
            if p.segment else ""
        segments.append(f"ERR||{location}|{p.code}^{_TEXT.get(p.code, 'Error')}^HL70357|{_SEVERITY}||||"
                        f"{_escape(str(p))}")
    return ("\r".join(segments) + "\r").encode("utf-8")
