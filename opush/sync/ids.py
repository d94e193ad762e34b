"""ServerIds and compact id sets.

ServerId = ``collectionId:itemId`` (DESIGN "Sync state"): the collection id is the device's
small integer from the state store, the item id the backend's (an IMAP UID for mail).  The
device treats it as opaque (MS-ASCMD 2.2.3.166.x ServerId, up to 64 characters).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class InvalidServerId(ValueError):
    """Not a ServerId of this collection (Sync answers the command with Status 6/8, OP-123)."""


def server_id(collection_id: int | str, item_id: int | str) -> str:
    return f"{int(collection_id)}:{item_id}"


def parse_server_id(value: str | None, collection_id: int | None = None) -> tuple[int, str]:
    """``"5:42"`` -> ``(5, "42")``.  With ``collection_id``, a ServerId of another collection
    is invalid too.  Raises InvalidServerId (Opush OP-123/OP-138: such a command gets its own
    status, the request goes on)."""
    text = (value or "").strip()
    collection, sep, item = text.partition(":")
    if not sep or not collection.isdigit() or not item or len(text) > 64:
        raise InvalidServerId(f"not a ServerId: {value!r}")
    cid = int(collection)
    if collection_id is not None and cid != collection_id:
        raise InvalidServerId(f"ServerId {value!r} is not in collection {collection_id}")
    return cid, item


def parse_mail_server_id(value: str | None, collection_id: int | None = None) -> tuple[int, int]:
    """A mail ServerId: the item id must be an IMAP UID (>= 1)."""
    cid, item = parse_server_id(value, collection_id)
    if not item.isdigit() or int(item) < 1:
        raise InvalidServerId(f"not a mail ServerId: {value!r}")
    return cid, int(item)


# ------------------------------------------------------------------------------ id sets


def _is_number(item_id: str) -> bool:
    return item_id.isdigit() and (item_id == "0" or not item_id.startswith("0"))


class IdSet:
    """A set of item ids kept as sorted numeric ranges plus any non-numeric ids.

    UIDs are dense, so the set of 20,000 messages a device holds is one range: state stays
    small and loading it costs nothing when nothing changed.  Membership is a bisect.
    """

    __slots__ = ("_others", "_ranges")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ranges: list[list[int]] = []  # sorted, disjoint, non-adjacent [lo, hi]
        self._others: set[str] = set()
        for i in ids:
            self.add(i)

    # -- codec
    def encode(self) -> list[str]:
        """``["1-300", "305", "=abc"]``: ``"n"``/``"n-m"`` ranges, ``"="`` + other ids."""
        out = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self._ranges]
        return out + ["=" + o for o in sorted(self._others)]

    @classmethod
    def decode(cls, encoded: Iterable[str] | None) -> IdSet:
        s = cls()
        for token in encoded or ():
            if token.startswith("="):
                s._others.add(token[1:])
                continue
            lo, sep, hi = token.partition("-")
            s._add_range(int(lo), int(hi) if sep else int(lo))
        return s

    def copy(self) -> IdSet:
        s = IdSet()
        s._ranges = [list(r) for r in self._ranges]
        s._others = set(self._others)
        return s

    # -- set operations
    def _find(self, n: int) -> int:
        """Index of the first range whose hi >= n."""
        lo, hi = 0, len(self._ranges)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._ranges[mid][1] < n:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def __contains__(self, item_id: object) -> bool:
        if not isinstance(item_id, str):
            return False
        if not _is_number(item_id):
            return item_id in self._others
        n = int(item_id)
        i = self._find(n)
        return i < len(self._ranges) and self._ranges[i][0] <= n

    def _add_range(self, lo: int, hi: int) -> None:
        i = self._find(lo - 1)  # first range that ends at or after lo-1 (may merge left)
        j = i
        new_lo, new_hi = lo, hi
        while j < len(self._ranges) and self._ranges[j][0] <= hi + 1:
            new_lo = min(new_lo, self._ranges[j][0])
            new_hi = max(new_hi, self._ranges[j][1])
            j += 1
        self._ranges[i:j] = [[new_lo, new_hi]]

    def add(self, item_id: str) -> None:
        if _is_number(item_id):
            n = int(item_id)
            self._add_range(n, n)
        else:
            self._others.add(item_id)

    def discard(self, item_id: str) -> None:
        if not _is_number(item_id):
            self._others.discard(item_id)
            return
        n = int(item_id)
        i = self._find(n)
        if i >= len(self._ranges) or self._ranges[i][0] > n:
            return
        lo, hi = self._ranges[i]
        pieces = []
        if lo < n:
            pieces.append([lo, n - 1])
        if n < hi:
            pieces.append([n + 1, hi])
        self._ranges[i : i + 1] = pieces

    def __iter__(self) -> Iterator[str]:
        for lo, hi in self._ranges:
            for n in range(lo, hi + 1):
                yield str(n)
        yield from sorted(self._others)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self._ranges) + len(self._others)

    def __bool__(self) -> bool:
        return bool(self._ranges or self._others)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdSet) and self.encode() == other.encode()

    def __repr__(self) -> str:
        return f"IdSet({self.encode()!r})"


def numeric_key(item_id: str) -> tuple[int, int, str]:
    """Sort key: numbers numerically, then other ids."""
    if _is_number(item_id):
        return (0, int(item_id), "")
    return (1, 0, item_id)
