"""ServerIds, compressed id sets and the pending-window encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.sync.ids import IdSet, InvalidServerId, parse_mail_server_id, parse_server_id, server_id
from opush.sync.pending import Pending
from opush.sync.state import CollectionState

ids = st.one_of(
    st.integers(min_value=0, max_value=300).map(str),
    st.text(alphabet="abc-=:0", min_size=1, max_size=4),
)


@given(st.lists(st.tuples(st.booleans(), ids), max_size=200))
@settings(max_examples=200)
def test_idset_behaves_like_a_set(ops: list[tuple[bool, str]]) -> None:
    model: set[str] = set()
    s = IdSet()
    for add, i in ops:
        if add:
            model.add(i)
            s.add(i)
        else:
            model.discard(i)
            s.discard(i)
    assert set(s) == model
    assert len(s) == len(model)
    assert all(i in s for i in model)
    assert set(IdSet.decode(s.encode())) == model


def test_dense_uids_are_one_range() -> None:
    s = IdSet(str(u) for u in range(1, 20001))
    assert s.encode() == ["1-20000"]
    s.discard("500")
    assert s.encode() == ["1-499", "501-20000"]


@given(st.lists(st.tuples(ids, st.sampled_from("acds")), max_size=100, unique_by=lambda t: t[0]))
def test_pending_round_trip(items: list[tuple[str, str]]) -> None:
    pending = Pending(items)
    assert list(pending.items()) == items
    assert list(Pending.decode(pending.encode()).items()) == items


def test_pending_runs_are_compact() -> None:
    pending = Pending((str(u), "a") for u in range(5000, 0, -1))
    assert pending.encode() == [["a", 5000, 1]]
    assert pending.take(3) == [("5000", "a"), ("4999", "a"), ("4998", "a")]
    assert pending.encode() == [["a", 4997, 1]] and len(pending) == 4997


_ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "pop", "del", "take", "get", "round"]),
        st.one_of(st.integers(0, 40).map(str), st.sampled_from(["x", "y", "007"])),
        st.sampled_from("acds"),
        st.integers(0, 7),
    ),
    max_size=120,
)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(ids, st.sampled_from("acds")), max_size=60, unique_by=lambda t: t[0]), _ops
)
def test_pending_behaves_like_an_ordered_dict(
    start: list[tuple[str, str]], ops: list[tuple[str, str, str, int]]
) -> None:
    """Every operation the engine uses, against a plain dict (insertion order, in-place
    replacement), including a stored-and-loaded round trip at any point."""
    model = dict(start)
    pending = Pending(start)
    for op, key, value, count in ops:
        if op == "set":
            model[key] = value
            pending[key] = value
        elif op == "pop":
            assert pending.pop(key, None) == model.pop(key, None)
        elif op == "del":
            if key in model:
                del model[key]
                del pending[key]
        elif op == "take":
            taken = list(model.items())[:count]
            for k, _ in taken:
                del model[k]
            assert pending.take(count) == taken
        elif op == "get":
            assert pending.get(key) == model.get(key)
            assert (key in pending) == (key in model)
        else:
            pending = Pending.decode(pending.encode())
        assert list(pending.items()) == list(model.items())
        assert len(pending) == len(model) and bool(pending) == bool(model)


def test_a_fragmented_list_switches_to_a_dict_and_stays_correct() -> None:
    items = [(str(n), "c") for n in range(0, 2000, 2)]  # 1000 runs of one
    pending = Pending(items)
    assert list(pending.items()) == items
    assert Pending.decode(pending.encode()) == pending
    pending["1"] = "a"
    assert list(pending.items())[-1] == ("1", "a")


def test_state_json_round_trip() -> None:
    st_ = CollectionState(cursor={"uidvalidity": 1}, filter_type=3, options=["<x/>"])
    st_.have.add("5")
    st_.pending["7"] = "a"
    again = CollectionState.from_json(st_.to_json())
    assert again.to_json() == st_.to_json()


def test_server_ids() -> None:
    assert server_id(5, 42) == "5:42"
    assert parse_server_id("5:42") == (5, "42")
    assert parse_mail_server_id("5:42", 5) == (5, 42)
    for bad in ("", "5", ":4", "x:4", "5:", None):
        with pytest.raises(InvalidServerId):
            parse_server_id(bad)
    with pytest.raises(InvalidServerId):
        parse_server_id("6:1", 5)
    with pytest.raises(InvalidServerId):
        parse_mail_server_id("5:0")
