"""Generated ini content: the loader never fails with anything but ConfigError, and typed values
written by the sample renderer read back equal."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opush.config import ConfigError, load
from opush.config.ini import parse
from opush.config.loader import SECTION_CLASSES
from opush.config.schema import Spec, specs
from opush.config.values import Context
from tests.support.config import STANDALONE, write_config

FILES = [cls.FILE for _, cls in SECTION_CLASSES]
ALL_KEYS = [spec.key for _, cls in SECTION_CLASSES for _, spec in specs(cls)]

fast = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Lines that look like ini: known keys with arbitrary values, junk keys, comments, garbage.
line = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(ALL_KEYS), st.text(max_size=30)),
    st.builds(lambda k, v: f"{k} = {v}", st.text(max_size=10), st.text(max_size=10)),
    st.builds(lambda t: "#" + t, st.text(max_size=20)),
    st.text(max_size=40),
)
ini_text = st.lists(line, max_size=12).map("\n".join)


@fast
@given(files=st.dictionaries(st.sampled_from(FILES), ini_text, max_size=4))
def test_arbitrary_ini_content_gives_config_or_config_error(files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_config(Path(tmp), {**STANDALONE, **files})
        try:
            config = load(directory, obm_conf=None)
        except ConfigError as e:
            assert e.problems
            assert all(p.file in FILES or p.file == "logback.xml" for p in e.problems)
            assert all(str(p) for p in e.problems)
        else:
            assert config.opush is not None


@fast
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_config(Path(tmp), STANDALONE)
        (directory / "opush.ini").write_bytes(data)
        try:
            load(directory, obm_conf=None)
        except ConfigError:
            pass


@fast
@given(text=st.text(max_size=200))
def test_parser_never_raises(text: str) -> None:
    parsed = parse(text, "x.ini")
    for name, entry in parsed.entries.items():
        assert name == name.strip() and name
        assert entry.file == "x.ini"


TOKEN = st.text(
    st.characters(codec="ascii", categories=["L", "N"], include_characters="._@-/"),
    min_size=1,
    max_size=12,
)


def _value_strategy(spec: Spec[Any]) -> st.SearchStrategy[Any]:
    """Valid values of a key, chosen from its type's description (which states the bounds)."""
    ctx = Context(Path("/etc/opush"))
    kind = spec.type.description
    raw: st.SearchStrategy[str]
    if kind == "boolean":
        raw = st.sampled_from(["true", "false", "TRUE", "no", "on", "0"])
    elif kind.startswith("integer"):
        bounds = re.findall(r"-?\d+", kind)
        low = int(bounds[0]) if bounds else -(10**9)
        high = int(bounds[1]) if len(bounds) > 1 else 10**9
        raw = st.integers(low, high).map(str)
        if kind.endswith(" or false"):
            raw = raw | st.just("false")
    elif " | " in kind:
        raw = st.sampled_from(kind.split(" | "))
    elif kind == "comma-separated list":
        raw = st.lists(TOKEN, max_size=4).map(",".join)
    elif kind.startswith("path"):
        raw = TOKEN
    elif "URL" in kind:
        scheme = "ldap" if kind.startswith("ldap") else "http"
        raw = st.builds(lambda h, p: f"{scheme}://{h}:{p}/", TOKEN.filter(str.isalnum), PORTS)
    else:
        raw = TOKEN
    return raw.map(lambda r: spec.type.parse(r, ctx))


PORTS = st.integers(1, 65535)


@st.composite
def section_values(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    _, cls = draw(st.sampled_from(SECTION_CLASSES))
    chosen = draw(
        st.lists(st.sampled_from(list(specs(cls))), max_size=6, unique_by=lambda s: s[1].key)
    )
    return cls.FILE, {spec.key: draw(_value_strategy(spec)) for _, spec in chosen}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(generated=section_values())
def test_round_trip_of_valid_values(generated: tuple[str, dict[str, Any]]) -> None:
    file, values = generated
    cls = next(c for _, c in SECTION_CLASSES if c.FILE == file)
    by_key = {spec.key: (attr, spec) for attr, spec in specs(cls)}
    text = "".join(f"{k}={by_key[k][1].type.render(v)}\n" for k, v in values.items())
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_config(Path(tmp), dict(STANDALONE))
        with (directory / file).open("a", encoding="utf-8") as f:
            f.write(text)
        try:
            config = load(directory, obm_conf=None)
        except ConfigError as e:
            # Only checks across keys, or of the file a path names, may refuse individually
            # valid values.
            refusals = ("required", "must not exceed", "not supported", "cannot read")
            assert all(any(r in p.message for r in refusals) for p in e.problems), e.problems
            return
    section = getattr(config, next(n for n, c in SECTION_CLASSES if c is cls))
    for key, value in values.items():
        assert getattr(section, by_key[key][0].name) == value, key
