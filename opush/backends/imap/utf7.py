"""Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3).

Written here rather than using Twisted's `imap4-utf-7` codec so the rules are explicit and
tested: printable ASCII except "&" stands for itself, "&" is "&-", anything else is UTF-16BE
in modified base64 (",", not "/"; no padding) between "&" and "-".
"""

from __future__ import annotations

import base64
import binascii


def encode_mailbox(name: str) -> str:
    """Unicode mailbox name -> the ASCII form sent on the wire."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be", "surrogatepass")
            b64 = base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")
            out.append(f"&{b64}-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mailbox(wire: str) -> str:
    """Wire (modified UTF-7) mailbox name -> unicode.  Malformed shifts raise ValueError."""
    out: list[str] = []
    i = 0
    n = len(wire)
    while i < n:
        ch = wire[i]
        if ch != "&":
            # Servers with UTF8=ACCEPT may send raw UTF-8 too: kept as is.
            out.append(ch)
            i += 1
            continue
        end = wire.find("-", i + 1)
        if end < 0:
            raise ValueError(f"unterminated modified UTF-7 shift in {wire!r}")
        chunk = wire[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                raw = base64.b64decode(b64, validate=True)
            except binascii.Error as exc:
                raise ValueError(f"bad modified UTF-7 in {wire!r}") from exc
            if len(raw) % 2:
                raise ValueError(f"bad modified UTF-7 in {wire!r}")
            out.append(raw.decode("utf-16-be", "surrogatepass"))
        i = end + 1
    return "".join(out)
