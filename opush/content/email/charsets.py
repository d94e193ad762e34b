"""Charset names to codecs, tolerant decoding, and Windows code page ids (InternetCPID).

Mail in the wild declares charsets Python does not know (``x-unknown``, ``ks_c_5601-1987``), lies
(``us-ascii`` or no charset on 8-bit text: OP-132) or uses narrower sets than it needs
(``gb2312`` for GBK text, ``iso-8859-1`` for Windows-1252).  We widen to the usual superset and,
when nothing fits, take UTF-8 if it decodes cleanly, else Windows-1252: every byte then becomes a
character, so nothing raises and most Western mail reads right.
"""

from __future__ import annotations

import codecs
import functools

# Declared name -> the codec to use (superset or alias Python lacks).  WHATWG Encoding does the
# same widening for browsers; mail clients follow it.
_ALIASES: dict[str, str] = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "sjis": "shift_jis",
    "windows-31j": "cp932",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "utf8": "utf-8",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "x-user-defined": "cp1252",
    "unicode-1-1-utf-7": "utf-7",
    "big5-hkscs": "big5hkscs",
}

# Names that mean "we do not know": decode by guessing.
_UNKNOWN = {"", "unknown", "x-unknown", "unknown-8bit", "default", "charset", "none", "8bit"}

# Declared charset -> Windows code page id for Email:InternetCPID (MS-ASEMAIL 2.2.2.40).
_CODEPAGES: dict[str, int] = {
    "utf-8": 65001,
    "utf8": 65001,
    "us-ascii": 20127,
    "ascii": 20127,
    "iso-8859-1": 28591,
    "iso-8859-2": 28592,
    "iso-8859-3": 28593,
    "iso-8859-4": 28594,
    "iso-8859-5": 28595,
    "iso-8859-6": 28596,
    "iso-8859-7": 28597,
    "iso-8859-8": 28598,
    "iso-8859-8-i": 38598,
    "iso-8859-9": 28599,
    "iso-8859-13": 28603,
    "iso-8859-15": 28605,
    "windows-1250": 1250,
    "windows-1251": 1251,
    "windows-1252": 1252,
    "windows-1253": 1253,
    "windows-1254": 1254,
    "windows-1255": 1255,
    "windows-1256": 1256,
    "windows-1257": 1257,
    "windows-1258": 1258,
    "windows-874": 874,
    "koi8-r": 20866,
    "koi8-u": 21866,
    "gb2312": 936,
    "gbk": 936,
    "gb18030": 54936,
    "big5": 950,
    "shift_jis": 932,
    "shift-jis": 932,
    "iso-2022-jp": 50220,
    "euc-jp": 51932,
    "euc-kr": 51949,
    "ks_c_5601-1987": 949,
    "utf-7": 65000,
}

UTF8_CPID = 65001


@functools.lru_cache(maxsize=256)
def codec_for(charset: str | None) -> str | None:
    """The Python codec for a declared charset, or None when unknown/absent."""
    if charset is None:
        return None
    name = charset.strip().strip("\"'").lower()
    if "*" in name:  # RFC 2231 language suffix: utf-8*fr
        name = name.split("*", 1)[0]
    if name in _UNKNOWN:
        return None
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def guess_decode(data: bytes) -> str:
    """Bytes without a usable charset: UTF-8 when valid, else Windows-1252 (never raises)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _mostly_utf8(data)


def _mostly_utf8(data: bytes) -> str:
    """Invalid UTF-8: keep UTF-8 if only a few sequences are broken, else read it as 1252."""
    try:  # valid but cut inside a character (truncated fetch, split encoded-word)
        decoder = codecs.getincrementaldecoder("utf-8")()
        text = decoder.decode(data, final=False)
        pending = decoder.getstate()[0]
        if len(pending) >= 2:  # a lone lead byte at the end is more likely Latin-1
            return text
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    high = sum(1 for b in data if b >= 0x80)
    if bad * 4 < high:
        return text
    return data.decode("cp1252", errors="replace")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode body or header bytes under a declared charset, as well as can be done.

    ASCII-declared or undeclared text that is really 8-bit (OP-132) is guessed; a known charset
    that does not fit the bytes still decodes with replacement characters.
    """
    if data.isascii():
        # Fast path (most mail); also correct for every ASCII-compatible charset.  The 7-bit
        # stateful ones (ISO-2022-*, UTF-7, HZ) need their codec.
        codec = codec_for(charset)
        if codec is None or not (codec.startswith("iso2022") or codec in ("utf-7", "hz")):
            return data.decode("ascii")
        return data.decode(codec, errors="replace")
    codec = codec_for(charset)
    declared = (charset or "").strip().lower()
    if codec is None or declared in ("us-ascii", "ascii", "ansi_x3.4-1968"):
        return guess_decode(data)
    if codec == "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            # Declared UTF-8 but 8-bit legacy bytes (old MUAs), or a few broken sequences.
            return _mostly_utf8(data)
    try:
        return data.decode(codec, errors="replace")
    except Exception:  # a codec crashing on garbage must not stop a sync
        return guess_decode(data)


def codepage(charset: str | None) -> int:
    """InternetCPID of the charset the body came in (UTF-8 when unknown)."""
    if charset is None:
        return 20127
    name = charset.strip().strip("\"'").lower()
    cp = _CODEPAGES.get(name)
    if cp is not None:
        return cp
    if name.startswith("windows-") and name[8:].isdigit():
        return int(name[8:])
    if name.startswith("cp") and name[2:].isdigit():
        return int(name[2:])
    return UTF8_CPID
