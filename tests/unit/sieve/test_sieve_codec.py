"""ManageSieve responses and the out-of-office script opush writes (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.backends.sieve import (
    OofMessage,
    OofSettings,
    SieveError,
    parse_response,
    parse_script,
    render_script,
)


def test_greeting_capabilities_and_ok() -> None:
    raw = (
        b'"IMPLEMENTATION" "Dovecot Pigeonhole"\r\n"SASL" "PLAIN LOGIN"\r\n'
        b'"VERSION" "1.0"\r\nOK "Dovecot ready."\r\nextra'
    )
    parsed = parse_response(raw)
    assert parsed is not None
    response, used = parsed
    assert response.status == "OK" and response.text == "Dovecot ready."
    assert response.lines[1] == (b"SASL", b"PLAIN LOGIN")
    assert raw[used:] == b"extra"


def test_incomplete_responses_wait_for_more() -> None:
    whole = b'{11}\r\nkeep;\r\nstop\r\nOK "Getscript completed."\r\n'
    for cut in range(len(whole)):
        assert parse_response(whole[:cut]) is None
    parsed = parse_response(whole)
    assert parsed is not None and parsed[0].lines == ((b"keep;\r\nstop",),)


def test_listscripts_active_marker_codes_and_no() -> None:
    parsed = parse_response(b'"mine" ACTIVE\r\n"opush-oof"\r\nOK\r\n')
    assert parsed is not None
    assert parsed[0].lines == ((b"mine", "ACTIVE"), (b"opush-oof",))
    refused = parse_response(b'NO (NONEXISTENT) "Script does not exist."\r\n')
    assert refused is not None and refused[0].status == "NO"
    assert refused[0].text == "Script does not exist."
    with pytest.raises(SieveError):
        parse_response(b"{x}\r\n")


_messages = st.builds(
    OofMessage,
    enabled=st.booleans(),
    reply=st.text(max_size=80).map(lambda t: t.replace("\x00", "")),
    html=st.booleans(),
)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=150)
@given(
    st.sampled_from([0, 1, 2]),
    _times,
    _times,
    _messages,
    _messages,
    _messages,
    st.one_of(st.none(), st.sampled_from(["mine", 'we"ird \\ name'])),
)
def test_settings_survive_the_script(
    state: int,
    a: datetime,
    b: datetime,
    internal: OofMessage,
    known: OofMessage,
    unknown: OofMessage,
    previous: str | None,
) -> None:
    start, end = min(a, b), max(a, b)
    oof = OofSettings(
        state=state,
        start=start if state == 2 else None,
        end=end if state == 2 else None,
        internal=internal,
        external_known=known,
        external_unknown=unknown,
    )
    text = render_script(oof, address="alice@example.org", domain="example.org", previous=previous)
    assert parse_script(text) == (oof, previous)
    assert ("vacation :days 1" in text) == (state != 0 and (internal.enabled or unknown.enabled))
    assert ("include :personal" in text) == (previous is not None)


def test_dot_lines_are_stuffed_and_html_is_mime() -> None:
    oof = OofSettings(
        state=1,
        internal=OofMessage(True, ".\nback soon\n..", html=False),
        external_unknown=OofMessage(True, "<p>away</p>", html=True),
    )
    text = render_script(oof, address="a@example.org", domain="example.org", previous=None)
    assert "text:\r\n..\r\nback soon\r\n...\r\n.\r\n" in text
    assert ':mime :addresses ["a@example.org"]' in text
    assert 'if address :domain :is "from" "example.org"' in text
