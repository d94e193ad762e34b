"""The pending list of a collection: an ordered map item id -> operation, kept as runs.

An initial sync of a 100,000-message folder has 100,000 pending Adds, newest first; each Sync
sends the first WindowSize of them and stores the rest.  As a plain dict that meant building
and re-encoding 100,000 entries per window (O(folder) per Sync, O(folder^2) in all).  Here
consecutive numeric ids with the same operation are one run ``[op, first, last]`` (ascending
or descending), so loading, taking the window and storing cost O(runs).  The dict operations
the engine uses keep dict semantics (assigning an existing id keeps its position; iteration is
in order).

A list that fragments into many runs (scattered changes) switches to a plain ordered dict,
which is what it used to be; the stored form is the same runs either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

_DICT_ABOVE = 256  # runs beyond which a plain dict is cheaper to work with

_MISSING: Any = object()


def _is_number(item_id: str) -> bool:
    return item_id.isdigit() and (item_id == "0" or not item_id.startswith("0"))


class _Run:
    """``first``..``last`` stepping by ``step`` (1 or -1); ``key`` for a non-numeric id."""

    __slots__ = ("first", "key", "last", "op", "step")

    def __init__(self, op: str, first: int, last: int, key: str | None = None) -> None:
        self.op = op
        self.first = first
        self.last = last
        self.step = 1 if last >= first else -1
        self.key = key

    def size(self) -> int:
        return 1 if self.key is not None else abs(self.last - self.first) + 1

    def holds(self, n: int) -> bool:
        if self.key is not None:
            return False
        if self.step == 1:
            return self.first <= n <= self.last
        return self.last <= n <= self.first

    def ids(self) -> Iterator[str]:
        if self.key is not None:
            yield self.key
            return
        for n in range(self.first, self.last + self.step, self.step):
            yield str(n)


def _encode_items(items: Iterable[tuple[str, str]]) -> list[list[Any]]:
    """Runs ``[op, first, last]`` of consecutive numeric ids, ``[op, "=id"]`` otherwise."""
    out: list[list[Any]] = []
    for item_id, op in items:
        if _is_number(item_id):
            n = int(item_id)
            if out:
                last = out[-1]
                if last[0] == op and len(last) == 3:
                    first, end = last[1], last[2]
                    if (first <= end and n == end + 1) or (first >= end and n == end - 1):
                        last[2] = n
                        continue
            out.append([op, n, n])
        else:
            out.append([op, "=" + item_id])
    return out


class Pending:
    """Ordered ``item id -> op`` (dict semantics), stored as runs."""

    __slots__ = ("_dict", "_runs", "_size")

    def __init__(self, items: Iterable[tuple[str, str]] | dict[str, str] = ()) -> None:
        self._runs: list[_Run] = []
        self._size = 0
        self._dict: dict[str, str] | None = None
        pairs = items.items() if isinstance(items, dict) else items
        for item_id, op in pairs:
            self[item_id] = op

    # ---------------------------------------------------------------- storage form

    def encode(self) -> list[list[Any]]:
        if self._dict is not None:
            return _encode_items(self._dict.items())
        return [
            [r.op, "=" + r.key] if r.key is not None else [r.op, r.first, r.last]
            for r in self._runs
        ]

    @classmethod
    def decode(cls, runs: Iterable[list[Any]]) -> Pending:
        out = cls()
        for run in runs:
            if len(run) == 2:
                out[str(run[1])[1:]] = str(run[0])
            elif out._dict is not None:
                for n in _Run(str(run[0]), int(run[1]), int(run[2])).ids():
                    out._dict[n] = str(run[0])
            else:
                out._append_run(str(run[0]), int(run[1]), int(run[2]))
        return out

    def _append_run(self, op: str, first: int, last: int) -> None:
        """Append ids that are not present yet."""
        tail = self._runs[-1] if self._runs else None
        if tail is not None and tail.key is None and tail.op == op:
            if tail.first == tail.last:
                step = first - tail.last
                if abs(step) == 1 and (first == last or (last - first) * step > 0):
                    tail.step = step
                    tail.last = last
                    self._size += abs(last - first) + 1
                    return
            elif first == tail.last + tail.step and (
                first == last or (last - first) * tail.step > 0
            ):
                tail.last = last
                self._size += abs(last - first) + 1
                return
        self._runs.append(_Run(op, first, last))
        self._size += abs(last - first) + 1
        self._check_fragmentation()

    def _check_fragmentation(self) -> None:
        if len(self._runs) > _DICT_ABOVE:
            self._dict = dict(self._items_from_runs())
            self._runs = []

    # ---------------------------------------------------------------- lookup

    def _find(self, item_id: str) -> tuple[int, _Run] | None:
        if _is_number(item_id):
            n = int(item_id)
            for i, run in enumerate(self._runs):
                if run.holds(n):
                    return i, run
            return None
        for i, run in enumerate(self._runs):
            if run.key == item_id:
                return i, run
        return None

    def get(self, item_id: str, default: Any = None) -> Any:
        if self._dict is not None:
            return self._dict.get(item_id, default)
        found = self._find(item_id)
        return default if found is None else found[1].op

    def __getitem__(self, item_id: str) -> str:
        op = self.get(item_id, _MISSING)
        if op is _MISSING:
            raise KeyError(item_id)
        return str(op)

    def __contains__(self, item_id: object) -> bool:
        if not isinstance(item_id, str):
            return False
        if self._dict is not None:
            return item_id in self._dict
        return self._find(item_id) is not None

    def __len__(self) -> int:
        return len(self._dict) if self._dict is not None else self._size

    def __bool__(self) -> bool:
        return len(self) > 0

    def _items_from_runs(self) -> Iterator[tuple[str, str]]:
        for run in list(self._runs):
            for item_id in run.ids():
                yield item_id, run.op

    def items(self) -> Iterator[tuple[str, str]]:
        """In order (a snapshot: safe to change the list while iterating)."""
        if self._dict is not None:
            return iter(list(self._dict.items()))
        return self._items_from_runs()

    def __iter__(self) -> Iterator[str]:
        return (item_id for item_id, _ in self.items())

    # ---------------------------------------------------------------- changes

    def pop(self, item_id: str, default: Any = _MISSING) -> Any:
        if self._dict is not None:
            if default is _MISSING:
                return self._dict.pop(item_id)
            return self._dict.pop(item_id, default)
        found = self._find(item_id)
        if found is None:
            if default is _MISSING:
                raise KeyError(item_id)
            return default
        i, run = found
        op = run.op
        self._size -= 1
        if run.key is not None or run.first == run.last:
            del self._runs[i]
            return op
        n = int(item_id)
        if n == run.first:
            run.first += run.step
        elif n == run.last:
            run.last -= run.step
        else:
            self._runs.insert(i + 1, _Run(run.op, n + run.step, run.last))
            run.last = n - run.step
            self._check_fragmentation()
        return op

    def __delitem__(self, item_id: str) -> None:
        self.pop(item_id)

    def __setitem__(self, item_id: str, op: str) -> None:
        if self._dict is not None:
            self._dict[item_id] = op
            return
        found = self._find(item_id)
        if found is None:
            if _is_number(item_id):
                n = int(item_id)
                self._append_run(op, n, n)
            else:
                self._runs.append(_Run(op, 0, 0, key=item_id))
                self._size += 1
                self._check_fragmentation()
            return
        i, run = found
        if run.op == op:
            return
        if run.key is not None or run.first == run.last:
            run.op = op
            return
        # Replaced in place (dict semantics: the position stays): split the run around it.
        n = int(item_id)
        pieces: list[_Run] = []
        if n != run.first:
            pieces.append(_Run(run.op, run.first, n - run.step))
        pieces.append(_Run(op, n, n))
        if n != run.last:
            pieces.append(_Run(run.op, n + run.step, run.last))
        self._runs[i : i + 1] = pieces
        self._check_fragmentation()

    def take(self, count: int) -> list[tuple[str, str]]:
        """Remove and return the first ``count`` entries (a Sync window), in order."""
        out: list[tuple[str, str]] = []
        if self._dict is not None:
            for item_id in list(self._dict)[:count]:
                out.append((item_id, self._dict.pop(item_id)))
            return out
        while self._runs and len(out) < count:
            run = self._runs[0]
            size = run.size()
            room = count - len(out)
            if size <= room:
                out.extend((i, run.op) for i in run.ids())
                del self._runs[0]
                self._size -= size
                continue
            stop = run.first + run.step * room
            out.extend((str(n), run.op) for n in range(run.first, stop, run.step))
            run.first = stop
            self._size -= room
        return out

    def clear(self) -> None:
        self._runs = []
        self._size = 0
        self._dict = None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Pending | dict):
            return list(self.items()) == list(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Pending({self.encode()!r})"
