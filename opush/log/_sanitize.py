"""OP-100: passwords never reach a log. One function, applied to every line we write."""

from __future__ import annotations

import re

# Every alternative starts at a keyword, so ``sanitize`` tries it only where a cheap
# ``str.find`` saw one (a plain IGNORECASE scan of a 2 MB REQUEST.FULL dump with base64
# attachments blocked the reactor for 0.4 s), and repeats are bounded so that no input makes
# it quadratic. Groups 1..6 are the kept parts.
_SECRET = re.compile(
    r"""
    # HTTP header, any scheme: "Authorization: Basic xxx", "Proxy-Authorization: Bearer xxx"
    (authorization\s*[:=]\s*["']?(?:[a-z][a-z0-9-]*[ ]+)?)[^\s"',;&]+
    # a bare credential token: "Basic dXNlcjpwYXNz"
    | (\b(?:basic|bearer)[ ]+)(?!realm=)[a-z0-9+/=._~-]{4,}
    # key=value, key: value, "key": "value", key='v' (also pkcs12Password=, cassandra.pwd=)
    | ((?:password|passwd|pwd|secret)[\w.-]{0,40}["']?\s*[:=]\s*["']?)
      (?:(?<=")[^"]*|(?<=')[^']*|[^\s"'&,;<>)}\]]+)
    # XML elements: <Password>..</Password>, <settings:DevicePassword>..</settings:DevicePassword>
    | ((?:password|passwd)[\w.-]{0,40}(?:\s[^<>]{0,100})?>)[^<]*(?=</[\w.:-]{0,40}?pass)
    # IMAP "tag LOGIN user pass" (astrings: quoted, literal or atom)
    | (\b(?-i:LOGIN)[ ]+(?:"(?:[^"\\]|\\.){0,200}"|\{\d+\+?\}|[^\s"]+)[ ]+)
      (?:"(?:[^"\\]|\\.){0,200}"|\S+)
    # IMAP AUTHENTICATE / SMTP AUTH with an initial response
    | (\b(?-i:AUTHENTICATE|AUTH)[ ]+(?:PLAIN|LOGIN|XOAUTH2|OAUTHBEARER)[ ]+)\S+
    """,
    re.IGNORECASE | re.VERBOSE,
)

# Lower-case prefixes of the keywords above.
_KEYWORDS = ("pass", "pwd", "secret", "auth", "basic", "bearer", "login")


def _mask(m: re.Match[str]) -> str:
    for group in range(1, 7):
        key = m.group(group)
        if key is not None:
            return key + "*"
    return "*"  # pragma: no cover - every alternative has a key group


def sanitize(text: str) -> str:
    """Replace every password-like value in ``text`` by ``*`` (OP-100)."""
    low = text.lower()
    starts: list[int] = []
    for word in _KEYWORDS:
        i = low.find(word)
        while i >= 0:
            starts.append(i)
            i = low.find(word, i + 1)
    if not starts:
        return text
    starts.sort()
    out: list[str] = []
    last = 0
    for pos in starts:
        if pos < last:
            continue
        m = _SECRET.match(text, pos)
        if m is None:
            continue
        out.append(text[last:pos])
        out.append(_mask(m))
        last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)
