"""BREAKDOWN lines (guide 12.3) and the SUMMARY message (12.4)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock, deferLater

from opush.log import Breakdown, format_summary, watch, watched


def test_guide_example() -> None:
    clock = Clock()
    bd = Breakdown(clock.seconds)
    with bd.measure():
        with watch("CASSANDRA"):
            clock.advance(0.014)
        with watch("EMAIL"):
            with watch("SQL"):
                clock.advance(0.003)
            with watch("CASSANDRA"):
                clock.advance(0.016)
            clock.advance(1.076)
        with watch("SQL"):
            clock.advance(0.005)
        clock.advance(0.027)
        with watch("SQL"):
            clock.advance(0.006)
        with watch("JSON"):
            pass  # 0 ms: not shown
    assert bd.render() == (
        "REQUEST:1147 (EMAIL:1095 (CASSANDRA:16, SQL:3, OTHER:1076), "
        "CASSANDRA:14, SQL:11, OTHER:27)"
    )


def test_a_category_appears_once_per_branch() -> None:
    clock = Clock()
    bd = Breakdown(clock.seconds)
    with bd.measure(), watch("EMAIL"):
        with watch("EMAIL"), watch("IMAP"):
            clock.advance(0.010)
        clock.advance(0.005)
    assert bd.render() == "REQUEST:15 (EMAIL:15 (IMAP:10, OTHER:5))"


def test_watch_outside_a_request_does_nothing() -> None:
    with watch("IMAP"):
        pass


def test_breakdown_follows_coroutines_across_deferreds() -> None:
    clock = Clock()

    @watched("IMAP")
    async def fetch() -> str:
        await deferLater(clock, 0.2, lambda: None)
        return "mail"

    async def request() -> str:
        with watch("EMAIL"):
            return await fetch()

    bd = Breakdown(clock.seconds)
    with bd.measure():
        d = ensureDeferred(request())
    clock.advance(0.2)
    assert d.result == "mail"
    bd.root.end = clock.seconds()
    assert bd.render() == "REQUEST:200 (EMAIL:200 (IMAP:200))"


def test_summary_always_has_the_three_fields() -> None:
    assert format_summary(10, 2, 0) == "CHANGE: 10, DELETE: 2, FETCH: 0"


# --- property: the guide's rules hold for any sequential request --------------------------

CATEGORIES = ["EMAIL", "SQL", "IMAP", "CASSANDRA", "OBM"]
Tree = st.deferred(
    lambda: st.lists(
        st.one_of(
            st.integers(0, 50),  # plain work, in ms
            st.tuples(st.sampled_from(CATEGORIES), Tree),  # a watched block
        ),
        max_size=4,
    )
)


def _run(clock: Clock, steps: list) -> int:
    total = 0
    for step in steps:
        if isinstance(step, int):
            clock.advance(step / 1000)
            total += step
        else:
            with watch(step[0]):
                total += _run(clock, step[1])
    return total


def _parse(text: str, pos: int = 0) -> tuple[tuple[str, int, list], int]:
    m = re.compile(r"([A-Z]+):(\d+)").match(text, pos)
    assert m, text[pos:]
    name, ms, pos = m.group(1), int(m.group(2)), m.end()
    children: list = []
    if text.startswith(" (", pos):
        pos += 2
        while True:
            child, pos = _parse(text, pos)
            children.append(child)
            if text.startswith(", ", pos):
                pos += 2
                continue
            assert text[pos] == ")"
            pos += 1
            break
    return (name, ms, children), pos


def _check(node: tuple[str, int, list], path: frozenset[str]) -> None:
    name, ms, children = node
    assert ms > 0 or not path, node
    assert name not in path
    if not children:
        return
    assert sum(c[1] for c in children) == ms
    names = [c[0] for c in children]
    assert len(set(names)) == len(names)
    real = [c for c in children if c[0] != "OTHER"]
    assert names[: len(real)] == [c[0] for c in real], "OTHER comes last"
    assert [c[1] for c in real] == sorted((c[1] for c in real), reverse=True)
    for c in real:
        _check(c, path | {name})


@settings(max_examples=100, deadline=None)
@given(Tree)
def test_rules_of_the_guide(steps: list) -> None:
    clock = Clock()
    bd = Breakdown(clock.seconds)
    with bd.measure():
        total = _run(clock, steps)
    text = bd.render()
    tree, end = _parse(text)
    assert end == len(text)
    assert tree[0] == "REQUEST" and tree[1] == total
    _check(tree, frozenset())
