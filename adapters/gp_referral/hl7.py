"""A lenient, fast HL7 v2 reader for the hot path.

hl7apy builds a full object tree per message (about 40 messages/s on the project's
machine for a 1.4 kB referral), which is far below what ingest needs; the mapping only
reads a few dozen fields, so here a message is split into segments and fields once and
components are split, and escapes decoded, only when a field is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

START, END, CR = b"\x0b", b"\x1c", b"\r"
WRAPPERS = {"FHS", "BHS", "BTS", "FTS"}
_CHARSETS = {
    "": None, "ASCII": "ascii", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "UNICODE": "utf-8",
    "8859/1": "iso-8859-1", "8859/15": "iso-8859-15", "ISO-8859-1": "iso-8859-1", "ISO IR100": "iso-8859-1",
}


class NotHl7(ValueError):
    """The bytes are not an HL7 v2 message (no MSH, unknown encoding characters)."""


def split_stream(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Raw messages from a byte stream: MLLP frames or bare, CR / LF / CRLF, batch wrappers
    dropped. Streams so that a file of any size is held one message at a time."""
    pending: list[bytes] = []
    rest = b""
    for chunk in chunks:
        data = rest + chunk.replace(START, b"\n").replace(END, b"\n")
        lines = re.split(rb"\r\n|\n|\r", data)
        rest = lines.pop()
        for line in lines:
            yield from _take(line, pending)
    if rest:
        yield from _take(rest, pending)
    if pending:
        yield CR.join(pending) + CR


def _take(line: bytes, pending: list[bytes]) -> Iterator[bytes]:
    line = line.strip(b"\x00")
    if not line.strip():
        return
    head = line[:3]
    if head == b"MSH" and pending:
        yield CR.join(pending) + CR
        pending.clear()
    if head.decode("ascii", "replace") in WRAPPERS:
        return
    pending.append(line)


def charset_of(raw: bytes) -> str | None:
    """The Python codec MSH-18 names; None when empty (then UTF-8, falling back to Windows-1252)."""
    if not raw.startswith(b"MSH") or len(raw) < 8:
        raise NotHl7("the message does not start with MSH")
    sep = raw[3:4]
    msh = raw.split(CR, 1)[0].split(sep)
    value = msh[17].decode("ascii", "replace").strip().upper() if len(msh) > 17 else ""
    value = value.split(raw[4:5].decode("ascii", "replace"))[0] if value else value
    if value in _CHARSETS:
        return _CHARSETS[value]
    raise UnknownCharset(value)


class UnknownCharset(ValueError):
    pass


def decode(raw: bytes) -> str:
    codec = charset_of(raw)
    if codec:
        return raw.decode(codec)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


@dataclass
class Segment:
    name: str
    fields: list[str]  # fields[n] is SEG-n (for MSH, MSH-1 is the field separator)
    index: int  # position in the message, 1-based
    #: (field, component, sub, repetition) -> decoded value, filled as the mapping reads
    read: dict[tuple[int, int, int, int], str] = field(default_factory=dict)


@dataclass
class Message:
    """A parsed message: segments in order, separators from MSH-1/MSH-2."""

    text: str
    segments: list[Segment]
    field_sep: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    _by_name: dict[str, list[Segment]] = field(default_factory=dict)

    def all(self, name: str) -> list[Segment]:
        return self._by_name.get(name, [])

    def first(self, name: str) -> Segment | None:
        found = self._by_name.get(name)
        return found[0] if found else None

    def raw_field(self, seg: Segment, n: int) -> str:
        return seg.fields[n] if n < len(seg.fields) else ""

    def repetitions(self, seg: Segment, n: int) -> list[str]:
        value = self.raw_field(seg, n)
        if seg.name == "MSH" and n == 2:
            return [value]
        return value.split(self.repetition) if value else []

    def component_of(self, rep: str, comp: int = 1, sub: int = 1) -> str:
        """Component ``comp`` (and subcomponent ``sub``) of one repetition, unescaped."""
        parts = rep.split(self.component)
        value = parts[comp - 1] if comp <= len(parts) else ""
        if self.subcomponent in value:
            subs = value.split(self.subcomponent)
            value = subs[sub - 1] if sub <= len(subs) else ""
        elif sub > 1:
            value = ""
        return self.unescape(value) if self.escape in value else value

    def get(self, name: str, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        seg = self.first(name)
        return self.get_in(seg, n, comp, sub, rep) if seg is not None else ""

    def get_in(self, seg: Segment, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        key = (n, comp, sub, rep)
        found = seg.read.get(key)
        if found is not None:
            return found
        if seg.name == "MSH" and n <= 2:
            return self.raw_field(seg, n)
        reps = self.repetitions(seg, n)
        value = self.component_of(reps[rep - 1], comp, sub) if rep <= len(reps) else ""
        seg.read[key] = value
        return value

    def unescape(self, value: str) -> str:
        e = self.escape
        out: list[str] = []
        i = 0
        while i < len(value):
            ch = value[i]
            if ch != e:
                out.append(ch)
                i += 1
                continue
            j = value.find(e, i + 1)
            if j < 0:
                out.append(value[i:])
                break
            code = value[i + 1 : j]
            out.append(self._escape(code))
            i = j + 1
        return "".join(out)

    def _escape(self, code: str) -> str:
        simple = {"F": self.field_sep, "S": self.component, "T": self.subcomponent, "R": self.repetition,
                  "E": self.escape, ".br": "\n", "H": "", "N": ""}
        if code in simple:
            return simple[code]
        if code[:1] == "X" and len(code) % 2 == 1:
            try:
                return bytes.fromhex(code[1:]).decode("utf-8", "replace")
            except ValueError:
                pass
        return self.escape + code + self.escape  # unknown escapes are kept as sent


def parse(text: str) -> Message:
    """Split a decoded message; raises :class:`NotHl7` when it has no usable MSH."""
    if not text.startswith("MSH") or len(text) < 8:
        raise NotHl7("the message does not start with MSH")
    fs = text[3]
    enc = text[4:8]
    if fs.isalnum() or len(set(enc[:4])) < 4 or fs in enc:
        raise NotHl7("MSH-1/MSH-2 do not give usable separators")
    segments: list[Segment] = []
    by_name: dict[str, list[Segment]] = {}
    for i, line in enumerate(s for s in re.split(r"\r\n|\n|\r", text) if s.strip()):
        parts = line.split(fs)
        name = parts[0]
        if name == "MSH":
            parts = ["MSH", fs, *parts[1:]]
        seg = Segment(name, parts, i + 1)
        segments.append(seg)
        by_name.setdefault(name, []).append(seg)
    msg = Message(text, segments, fs, enc[0], enc[1], enc[2], enc[3])
    msg._by_name = by_name
    return msg
