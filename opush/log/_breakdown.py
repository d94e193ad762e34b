"""BREAKDOWN: where a request's time went, and the SUMMARY.IN/OUT line (guide 12.3, 12.4).

The HTTP layer measures each request::

    bd = Breakdown()
    with bd.measure():          # REQUEST
        ...                     # code below may use `with watch("IMAP"):` / `@watched("SQL")`
    logger("BREAKDOWN").info("{breakdown}", breakdown=bd.render())

which logs ``REQUEST:1147 (EMAIL:1095 (CASSANDRA:16, SQL:3, OTHER:1076), CASSANDRA:14, OTHER:27)``.
The current node lives in a contextvar, so nesting follows the request through its coroutines
like the request context does; outside a measured request ``watch`` costs one lookup.

Rendering follows the Java server (OBM BreakdownDurationLoggerService): 0 ms nodes are dropped;
a category already on the branch is not repeated (its children move up); siblings of one
category are merged (times summed); children are sorted by descending time; ``OTHER`` (the
node's time not spent in children) comes last, only when above 0. Durations are whole ms.
Categories used by the Java server: EMAIL, EVENT, CONTACTS, TASKS, SQL, CASSANDRA, JSON, IMAP,
OBM.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

import attrs

P = ParamSpec("P")
T = TypeVar("T")


@attrs.define(eq=False)
class _Node:
    category: str
    start: float
    end: float | None = None
    children: list[_Node] = attrs.field(factory=list)


_current: ContextVar[tuple[Breakdown, _Node] | None] = ContextVar("opush_breakdown", default=None)


class Breakdown:
    """The timing tree of one request; ``now`` is a seconds clock (``reactor.seconds`` in tests)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now
        self.root = _Node("REQUEST", now())

    @contextlib.contextmanager
    def measure(self) -> Iterator[Breakdown]:
        """Run the block as this request's REQUEST node (restarting its clock)."""
        self.root.start = self.now()
        token = _current.set((self, self.root))
        try:
            yield self
        finally:
            self.root.end = self.now()
            _current.reset(token)

    def render(self) -> str:
        return render(self.root, self.now())


@contextlib.contextmanager
def watch(category: str) -> Iterator[None]:
    """Count the block's time under ``category`` in the current request's breakdown."""
    current = _current.get()
    if current is None:
        yield
        return
    bd, parent = current
    node = _Node(category, bd.now())
    parent.children.append(node)
    token = _current.set((bd, node))
    try:
        yield
    finally:
        node.end = bd.now()
        _current.reset(token)


def watched(
    category: str,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorator form of ``watch`` for ``async def`` functions."""

    def decorate(f: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(f)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            with watch(category):
                return await f(*args, **kwargs)

        return wrapper

    return decorate


def _ms(node: _Node, now: float) -> int:
    end = node.end if node.end is not None else now
    return max(0, round((end - node.start) * 1000))


@attrs.define
class _Out:
    category: str
    ms: int
    children: list[_Node]


def _lifted(children: list[_Node], path: frozenset[str]) -> list[_Node]:
    """Children with categories already on the branch replaced by their own children."""
    out: list[_Node] = []
    for c in children:
        if c.category in path:
            out.extend(_lifted(c.children, path))
        else:
            out.append(c)
    return out


def _render(category: str, ms: int, children: list[_Node], path: frozenset[str], now: float) -> str:
    path = path | {category}
    merged: dict[str, _Out] = {}
    for c in _lifted(children, path):
        out = merged.setdefault(c.category, _Out(c.category, 0, []))
        out.ms += _ms(c, now)
        out.children.extend(c.children)
    kids = sorted((o for o in merged.values() if o.ms > 0), key=lambda o: -o.ms)
    if not kids:
        return f"{category}:{ms}"
    parts = [_render(o.category, o.ms, o.children, path, now) for o in kids]
    other = ms - sum(o.ms for o in kids)
    if other > 0:
        parts.append(f"OTHER:{other}")
    return f"{category}:{ms} ({', '.join(parts)})"


def render(root: _Node, now: float) -> str:
    return _render(root.category, _ms(root, now), root.children, frozenset(), now)


def format_summary(change: int, delete: int, fetch: int) -> str:
    """The SUMMARY.IN/OUT message: ``CHANGE: 10, DELETE: 2, FETCH: 0`` (all three, always)."""
    return f"CHANGE: {change}, DELETE: {delete}, FETCH: {fetch}"
