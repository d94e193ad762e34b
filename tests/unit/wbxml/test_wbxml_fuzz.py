"""Hostile input: mutated corpus bodies and random bytes only ever raise WbxmlError, quickly."""

from __future__ import annotations

import time
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opush.wbxml import Limits, WbxmlError, decode, encode
from tests.support.wbxml import corpus_files

# A spread of corpus bodies (small to large), read once.
_BODIES = [p.read_bytes() for p in corpus_files()[::25]] or [
    bytes.fromhex("03016a00000756520330000101")
]
# Keep mutation runs fast: drop the few largest (when there are more than a few).
_BODIES = sorted(_BODIES, key=len)
_BODIES = _BODIES[:-3] if len(_BODIES) > 6 else _BODIES


_TOKENS = [0x00, 0x01, 0x02, 0x03, 0x04, 0x43, 0x83, 0xC3, 0xFF]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_BODIES)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(
                st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x43, 0x83, 0xC3, 0xFF])
            )
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 6))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


def _decode_or_error(data: bytes, limits: Limits | None = None) -> None:
    try:
        root = decode(data, limits)
    except WbxmlError as e:
        assert e.offset is None or 0 <= e.offset <= len(data)
        return
    # Whatever decodes must encode again (canonical form) and decode to the same tree.
    again = encode(root)
    assert encode(decode(again)) == again


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_corpus_bodies_decode_or_raise_wbxml_error(data: bytes) -> None:
    _decode_or_error(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_after_a_valid_header(data: bytes) -> None:
    _decode_or_error(b"\x03\x01\x6a\x00" + data)
    _decode_or_error(data)


def test_small_hostile_bodies_cost_little_time_and_memory() -> None:
    hostile = [
        b"\x03\x01\x6a\x00" + b"\x45" * 100_000,  # deep nesting
        b"\x03\x01\x6a\x00\x45" + b"\x0d" * 1_000_000,  # a million elements from 1 MB
        b"\x03\x01\x6a\x00\x4b" + b"\x03a\x00" * 300_000 + b"\x01",  # many string chunks
        # 1 MB string table referenced over and over (amplification)
        b"\x03\x01\x6a\xc0\x80\x00" + b"y" * ((1 << 20) - 1) + b"\x00\x4b" + b"\x83\x00" * 1000,
    ]
    limits = Limits(max_depth=64, max_elements=50_000, max_size=4 << 20)
    for data in hostile:
        start = time.perf_counter()
        try:
            decode(data, limits)
        except WbxmlError:
            pass
        assert time.perf_counter() - start < 1.0
    # Python-side memory stays small too (tracemalloc is slow: only the cases that would grow).
    for data in (hostile[1], hostile[3]):
        tracemalloc.start()
        try:
            decode(data, limits)
        except WbxmlError:
            pass
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 32 << 20
