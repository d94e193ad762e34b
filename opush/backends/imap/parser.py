"""IMAP response parsing (RFC 3501, 4315, 7162, 6154): pure functions, no I/O.

A response arrives as text lines split around literals: `lines[i]` is the text that precedes
`literals[i]` (so there is one more line than literal).  Tokens are:

- `str` for atoms (including bracketed fetch keys such as ``BODY[HEADER]<0>``),
- `bytes` for quoted strings and literals (content may be 8-bit),
- `None` for NIL,
- `list` for parenthesized lists,
- `TooLarge` for a literal the connection dropped because it exceeded the command's bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TypeAlias

import attrs

from opush.backends.interfaces import Address, BodyPart, Envelope


class ParseError(ValueError):
    """The server sent something this parser cannot read."""


@attrs.frozen
class TooLarge:
    """Placeholder for a literal larger than the command allowed (content discarded)."""

    size: int


Token: TypeAlias = str | bytes | TooLarge | list["Token"] | None


@attrs.frozen
class Response:
    """One complete server response.

    `tag` is "*" (untagged), "+" (continuation) or the command tag.  For status responses
    (OK/NO/BAD/BYE/PREAUTH) `kind` is that word, `code` the bracketed response code tokens
    (name upper-cased first) and `text` the human text.  For data responses `kind` is the
    upper-cased name ("FETCH", "LIST", "EXISTS", "VANISHED"...), `number` the leading
    message number if any, and `data` the tokens after the name.
    """

    tag: str
    kind: str
    number: int | None = None
    data: list[Token] = attrs.field(factory=list)
    code: list[Token] | None = None
    text: str = ""

    @property
    def code_name(self) -> str | None:
        if not self.code:
            return None
        first = self.code[0]
        return first.upper() if isinstance(first, str) else None


STATUS_WORDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}$")


class _Scanner:
    def __init__(self, lines: Sequence[bytes], literals: Sequence[bytes | TooLarge]) -> None:
        if len(lines) != len(literals) + 1:
            raise ParseError("lines and literals do not interleave")
        self.lines = lines
        self.literals = literals
        self.li = 0
        self.pos = 0

    def _skip_spaces(self) -> None:
        line = self.lines[self.li]
        while self.pos < len(line) and line[self.pos] == 0x20:
            self.pos += 1

    def tokens(self, nested: bool = False) -> list[Token]:
        out: list[Token] = []
        while True:
            self._skip_spaces()
            line = self.lines[self.li]
            if self.pos >= len(line):
                if nested:
                    raise ParseError("unbalanced parenthesis")
                return out
            c = line[self.pos]
            if c == 0x28:  # (
                self.pos += 1
                out.append(self.tokens(nested=True))
            elif c == 0x29:  # )
                if not nested:
                    raise ParseError("unexpected ')'")
                self.pos += 1
                return out
            elif c == 0x22:  # "
                out.append(self._quoted())
            elif c == 0x7B and self.li < len(self.literals):  # {n} at end of line
                if not _LITERAL_AT_END.fullmatch(line[self.pos :]):
                    raise ParseError(f"bad literal marker in {line!r}")
                out.append(self.literals[self.li])
                self.li += 1
                self.pos = 0
            else:
                out.append(self._atom())

    def _quoted(self) -> bytes:
        line = self.lines[self.li]
        i = self.pos + 1
        buf = bytearray()
        while i < len(line):
            c = line[i]
            if c == 0x5C and i + 1 < len(line):  # backslash escape
                buf.append(line[i + 1])
                i += 2
                continue
            if c == 0x22:
                self.pos = i + 1
                return bytes(buf)
            buf.append(c)
            i += 1
        raise ParseError("unterminated quoted string")

    def _atom(self) -> str | None:
        line = self.lines[self.li]
        start = self.pos
        depth = 0
        i = start
        while i < len(line):
            c = line[i]
            if c == 0x5B:  # [
                depth += 1
            elif c == 0x5D and depth:  # ]
                depth -= 1
            elif depth == 0 and c in (0x20, 0x28, 0x29):
                break
            i += 1
        self.pos = i
        atom = line[start:i].decode("utf-8", "surrogateescape")
        if not atom:
            raise ParseError(f"empty atom in {line!r}")
        return None if atom.upper() == "NIL" else atom


# One token of the common grammar; anything else makes `_fast_tokens` give up, and the
# character scanner above (the reference) decides.  Groups: 1 "(", 2 ")", 3 quoted content,
# 4 literal marker (only at the end of a line), 5 atom (one level of [...] inside).
_TOKEN = re.compile(
    rb' *(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|(\{\d+\+?\}\Z)'
    rb'|([^ ()"{\[][^ ()\[]*(?:\[[^\[\]]*\][^ ()\[]*)*))'
)
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_NIL = frozenset({b"NIL", b"nil", b"Nil", b"NIl", b"nIL", b"niL", b"nIl", b"NiL"})


def _fast_tokens(
    lines: Sequence[bytes], literals: Sequence[bytes | TooLarge]
) -> list[Token] | None:
    """The tokens of a well-formed response in one regex pass per line (FETCH responses of a
    Sync window are most of what opush parses); None when the input needs the scanner."""
    root: list[Token] = []
    stack: list[list[Token]] = [root]
    cur = root
    last = len(lines) - 1
    match = _TOKEN.match
    for li, line in enumerate(lines):
        pos = 0
        end = len(line)
        took_literal = False
        while pos < end:
            m = match(line, pos)
            if m is None:
                if line[pos:].strip(b" "):
                    return None
                break
            pos = m.end()
            kind = m.lastindex
            if kind == 5:
                atom = m.group(5)
                cur.append(None if atom in _NIL else atom.decode("utf-8", "surrogateescape"))
            elif kind == 3:
                q = m.group(3)
                cur.append(_ESCAPE.sub(rb"\1", q) if b"\\" in q else q)
            elif kind == 1:
                child: list[Token] = []
                cur.append(child)
                stack.append(child)
                cur = child
            elif kind == 2:
                if len(stack) == 1:
                    return None
                stack.pop()
                cur = stack[-1]
            else:  # literal marker, at the end of the line by construction
                if li >= len(literals):
                    return None
                cur.append(literals[li])
                took_literal = True
        if li < last and not took_literal:
            return None
    if len(stack) != 1:
        return None
    return root


def _tokens(lines: Sequence[bytes], literals: Sequence[bytes | TooLarge]) -> list[Token]:
    if len(lines) != len(literals) + 1:
        raise ParseError("lines and literals do not interleave")
    fast = _fast_tokens(lines, literals)
    return fast if fast is not None else _Scanner(lines, literals).tokens()


def tokenize(line: bytes, literals: Sequence[bytes | TooLarge] = ()) -> list[Token]:
    """Tokens of one line (literal markers in it refer to `literals`)."""
    return _tokens([line], literals)


def _split_code(rest: bytes) -> tuple[list[Token] | None, str]:
    """`[CODE args] text` -> (code tokens, text)."""
    rest = rest.lstrip(b" ")
    if not rest.startswith(b"["):
        return None, rest.decode("utf-8", "replace")
    depth = 0
    in_quote = False
    for i, c in enumerate(rest):
        if in_quote:
            if c == 0x5C:
                continue
            if c == 0x22:
                in_quote = False
            continue
        if c == 0x22:
            in_quote = True
        elif c == 0x5B:
            depth += 1
        elif c == 0x5D:
            depth -= 1
            if depth == 0:
                try:
                    code = tokenize(rest[1:i])
                except ParseError:
                    code = [rest[1:i].decode("utf-8", "replace")]
                if code and isinstance(code[0], str):
                    code[0] = code[0].upper()
                return code, rest[i + 1 :].strip().decode("utf-8", "replace")
    return None, rest.decode("utf-8", "replace")


def parse_response(lines: Sequence[bytes], literals: Sequence[bytes | TooLarge] = ()) -> Response:
    first = lines[0]
    tag, sp, rest = first.partition(b" ")
    if tag == b"+":
        return Response(tag="+", kind="+", text=rest.decode("utf-8", "replace"))
    if not sp and tag != b"+":
        raise ParseError(f"malformed response {first!r}")
    tag_s = tag.decode("ascii", "replace")
    word, _, after = rest.partition(b" ")
    upper = word.decode("ascii", "replace").upper()
    if upper in STATUS_WORDS and not literals:
        code, text = _split_code(after)
        return Response(tag=tag_s, kind=upper, code=code, text=text)
    if tag_s != "*":
        raise ParseError(f"tagged response is not a status: {first!r}")
    if upper.isdigit():
        name, _, after = after.partition(b" ")
        data = _tokens([after, *lines[1:]], literals)
        return Response(tag="*", kind=name.decode("ascii").upper(), number=int(upper), data=data)
    data = _tokens([after, *lines[1:]], literals)
    return Response(tag="*", kind=upper, data=data)


# --------------------------------------------------------------------------- token helpers


def text(token: Token) -> str | None:
    """A string token as text (UTF-8, bad bytes replaced); None for NIL."""
    if token is None:
        return None
    if isinstance(token, bytes):
        return token.decode("utf-8", "replace")
    if isinstance(token, str):
        return token
    raise ParseError(f"expected a string, got {token!r}")


def number(token: Token) -> int:
    if isinstance(token, str) and token.isdigit():
        return int(token)
    if isinstance(token, list) and len(token) == 1:  # MODSEQ (123)
        return number(token[0])
    raise ParseError(f"expected a number, got {token!r}")


def as_list(token: Token) -> list[Token]:
    if token is None:
        return []
    if isinstance(token, list):
        return token
    raise ParseError(f"expected a list, got {token!r}")


# --------------------------------------------------------------------------- sequence sets


def parse_sequence_set(spec: str, star: int | None = None) -> list[int]:
    """`1:3,7,9:8` -> [1, 2, 3, 7, 8, 9] in the order written (COPYUID pairs rely on it).

    `*` needs `star`; a range `a:b` is the same as `b:a`.
    """
    out: list[int] = []
    for piece in spec.split(","):
        lo_s, colon, hi_s = piece.partition(":")
        lo = _seq_number(lo_s, star)
        hi = _seq_number(hi_s, star) if colon else lo
        if lo > hi:
            lo, hi = hi, lo
        out.extend(range(lo, hi + 1))
    return out


def parse_sequence_set_bounded(spec: str, limit: int) -> set[int]:
    """Like parse_sequence_set but keeps only numbers < limit, without expanding beyond it
    (a server may answer VANISHED 1:4000000000)."""
    out: set[int] = set()
    for piece in spec.split(","):
        lo_s, colon, hi_s = piece.partition(":")
        lo = _seq_number(lo_s, None)
        hi = _seq_number(hi_s, None) if colon else lo
        if lo > hi:
            lo, hi = hi, lo
        out.update(range(lo, min(hi + 1, limit)))
    return out


def _seq_number(s: str, star: int | None) -> int:
    if s == "*":
        if star is None:
            raise ParseError("'*' in a sequence set where it is not expected")
        return star
    if not s.isdigit() or int(s) == 0:
        raise ParseError(f"bad sequence number {s!r}")
    return int(s)


def compact_set(numbers: Iterable[int]) -> str:
    """[1, 2, 3, 7] -> "1:3,7" (what goes on the wire)."""
    ordered = sorted(set(numbers))
    if not ordered:
        raise ValueError("empty sequence set")
    parts: list[str] = []
    start = prev = ordered[0]
    for n in ordered[1:]:
        if n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


# --------------------------------------------------------------------------- FETCH


def fetch_items(data: list[Token]) -> dict[str, Token]:
    """`(UID 4 FLAGS (\\Seen) BODY[1]<0> {3}...)` -> {"UID": "4", "FLAGS": [...], "BODY[1]": b".."}.

    Keys are upper-cased; a partial fetch's `<origin>` suffix is dropped from the key.
    """
    if len(data) != 1 or not isinstance(data[0], list):
        raise ParseError(f"FETCH data is not one list: {data!r}")
    items = data[0]
    if len(items) % 2:
        raise ParseError(f"odd FETCH item list: {items!r}")
    out: dict[str, Token] = {}
    for i in range(0, len(items), 2):
        key = items[i]
        if not isinstance(key, str):
            raise ParseError(f"bad FETCH item name {key!r}")
        key = key.upper()
        if key.endswith(">") and "<" in key:
            key = key[: key.rindex("<")]
        out[key] = items[i + 1]
    return out


def flags(token: Token) -> frozenset[str]:
    """FLAGS without \\Recent: it is per session, so it would look like a change."""
    return frozenset(t for t in as_list(token) if isinstance(t, str) and t.lower() != "\\recent")


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_INTERNALDATE = re.compile(
    r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\s*$"
)


def parse_internaldate(token: Token) -> datetime:
    """`"17-Jul-1996 02:44:25 -0700"` -> aware datetime (locale independent)."""
    s = text(token) or ""
    m = _INTERNALDATE.match(s)
    if not m or m.group(2).lower() not in _MONTHS:
        raise ParseError(f"bad INTERNALDATE {s!r}")
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    offset = timedelta(hours=int(oh), minutes=int(om))
    tz = timezone(-offset if sign == "-" else offset)
    return datetime(int(year), _MONTHS[mon.lower()], int(day), int(hh), int(mm), int(ss), 0, tz)


def format_internaldate(value: datetime) -> str:
    """Aware datetime -> APPEND date-time ("dd-Mon-yyyy hh:mm:ss +zzzz")."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    offset = value.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    mon = list(_MONTHS)[value.month - 1].capitalize()
    return (
        f"{value.day:02d}-{mon}-{value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} "
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def format_search_date(value: date) -> str:
    """date -> `1-Feb-1994` (RFC 3501 date)."""
    mon = list(_MONTHS)[value.month - 1].capitalize()
    return f"{value.day}-{mon}-{value.year}"


def _addresses(token: Token) -> tuple[Address, ...]:
    out = []
    for entry in as_list(token):
        parts = as_list(entry)
        if len(parts) != 4:
            raise ParseError(f"bad address {entry!r}")
        out.append(Address(name=text(parts[0]), mailbox=text(parts[2]), host=text(parts[3])))
    return tuple(out)


def parse_envelope(token: Token) -> Envelope:
    fields = as_list(token)
    if len(fields) != 10:
        raise ParseError(f"ENVELOPE has {len(fields)} fields")
    return Envelope(
        date=text(fields[0]),
        subject=text(fields[1]),
        from_=_addresses(fields[2]),
        sender=_addresses(fields[3]),
        reply_to=_addresses(fields[4]),
        to=_addresses(fields[5]),
        cc=_addresses(fields[6]),
        bcc=_addresses(fields[7]),
        in_reply_to=text(fields[8]),
        message_id=text(fields[9]),
    )


def _params(token: Token) -> dict[str, str]:
    items = as_list(token)
    out: dict[str, str] = {}
    for i in range(0, len(items) - 1, 2):
        key = text(items[i])
        if key is not None:
            out[key.lower()] = text(items[i + 1]) or ""
    return out


def _lower(token: Token) -> str | None:
    s = text(token)
    return s.lower() if s is not None else None


def _int_or_none(token: Token) -> int | None:
    return number(token) if isinstance(token, str) else None


def _extension(part: dict[str, object], ext: list[Token]) -> None:
    """disposition, language, location (shared by single and multipart extension data)."""
    if ext:
        disp = ext[0]
        if isinstance(disp, list) and disp:
            part["disposition"] = _lower(disp[0])
            part["disposition_params"] = _params(disp[1] if len(disp) > 1 else None)
    if len(ext) > 1:
        lang = ext[1]
        if isinstance(lang, list):
            part["language"] = tuple(t for t in (text(x) for x in lang) if t)
        elif lang is not None:
            part["language"] = (text(lang) or "",)
    if len(ext) > 2:
        part["location"] = text(ext[2])


def _join(prefix: str, n: int) -> str:
    return f"{prefix}.{n}" if prefix else str(n)


def _is_multipart(token: Token) -> bool:
    return isinstance(token, list) and bool(token) and isinstance(token[0], list)


def _message_body(token: Token, prefix: str) -> BodyPart:
    """The body of a message (top level or inside message/rfc822) whose part is `prefix`."""
    if _is_multipart(token):
        return _node(token, prefix)
    return _node(token, _join(prefix, 1))


def _node(token: Token, section: str) -> BodyPart:
    fields = as_list(token)
    if _is_multipart(token):
        children: list[BodyPart] = []
        i = 0
        while i < len(fields) and isinstance(fields[i], list):
            children.append(_node(fields[i], _join(section, len(children) + 1)))
            i += 1
        if i >= len(fields):
            raise ParseError("multipart without subtype")
        attrs_: dict[str, object] = {
            "section": section,
            "type": "multipart",
            "subtype": (_lower(fields[i]) or ""),
            "children": tuple(children),
        }
        ext = fields[i + 1 :]
        if ext:
            attrs_["params"] = _params(ext[0])
            _extension(attrs_, ext[1:])
        return BodyPart(**attrs_)  # type: ignore[arg-type]
    if len(fields) < 7:
        raise ParseError(f"body part with {len(fields)} fields")
    type_ = _lower(fields[0]) or "text"
    subtype = _lower(fields[1]) or "plain"
    attrs_ = {
        "section": section,
        "type": type_,
        "subtype": subtype,
        "params": _params(fields[2]),
        "id": text(fields[3]),
        "description": text(fields[4]),
        "encoding": _lower(fields[5]),
        "size": _int_or_none(fields[6]),
    }
    rest = fields[7:]
    if type_ == "message" and subtype in ("rfc822", "global") and len(rest) >= 3:
        if isinstance(rest[0], list) and isinstance(rest[1], list):
            attrs_["envelope"] = parse_envelope(rest[0])
            attrs_["children"] = (_message_body(rest[1], section),)
            attrs_["lines"] = _int_or_none(rest[2])
            rest = rest[3:]
    elif type_ == "text" and rest:
        attrs_["lines"] = _int_or_none(rest[0])
        rest = rest[1:]
    if rest:
        attrs_["md5"] = text(rest[0]) if not isinstance(rest[0], list) else None
        _extension(attrs_, rest[1:])
    return BodyPart(**attrs_)  # type: ignore[arg-type]


def parse_bodystructure(token: Token) -> BodyPart:
    """BODYSTRUCTURE -> BodyPart tree with IMAP section numbers (RFC 3501 6.4.5)."""
    return _message_body(token, "")


# --------------------------------------------------------------------------- quoting


def quote(value: str | bytes) -> bytes:
    """An IMAP quoted string; raises ValueError for CR/LF/NUL (need a literal)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if any(c in raw for c in b"\r\n\x00"):
        raise ValueError("CR, LF and NUL cannot be quoted")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


_ATOM_SPECIALS = set(b'(){ %*"\\]') | set(range(0, 0x20)) | {0x7F}


def is_atom(value: str) -> bool:
    raw = value.encode("utf-8", "surrogateescape")
    return bool(raw) and all(c < 0x80 and c not in _ATOM_SPECIALS for c in raw)


def check_flag(flag: str) -> str:
    """A system flag (\\Seen) or keyword atom ($Forwarded); ValueError otherwise."""
    body = flag[1:] if flag.startswith("\\") else flag
    if not is_atom(body):
        raise ValueError(f"not a valid IMAP flag or keyword: {flag!r}")
    return flag
