"""OP-100: passwords are logged as * in all logs."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.log import sanitize


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Authorization: Basic YWxpY2U6c2VjcmV0", "Authorization: Basic *"),
        ("authorization=Bearer abc.def.ghi", "authorization=Bearer *"),
        ("{'Authorization': 'Basic YWxpY2U6c2VjcmV0'}", "{'Authorization': 'Basic *'}"),
        ("header Basic YWxpY2U6c2VjcmV0 seen", "header Basic * seen"),
        ("login=alice&password=secret&origin=o-push", "login=alice&password=*&origin=o-push"),
        (
            '{"loginAtDomain": "a@b", "password": "s e c"}',
            '{"loginAtDomain": "a@b", "password": "*"}',
        ),
        ("pkcs12Password: hunter2, next", "pkcs12Password: *, next"),
        ("cassandra.pwd='x y'", "cassandra.pwd='*'"),
        ("<Password>p4ss</Password>", "<Password>*</Password>"),
        (
            "<settings:DevicePassword a='1'>p4ss</settings:DevicePassword>",
            "<settings:DevicePassword a='1'>*</settings:DevicePassword>",
        ),
        ("a1 LOGIN alice@example.org secret", "a1 LOGIN alice@example.org *"),
        ('a1 LOGIN "alice" "sec ret"', 'a1 LOGIN "alice" *'),
        ("a2 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", "a2 AUTHENTICATE PLAIN *"),
        ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH PLAIN *"),
    ],
)
def test_known_forms_are_masked(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


@pytest.mark.parametrize(
    "text",
    [
        "a1 SELECT INBOX",
        "Authentication success [login:alice], the device [type:iPhone, id:ABC] is authorized.",
        'WWW-Authenticate: Basic realm="OBMPushService"',
        "REQUEST:1147 (EMAIL:1095 (CASSANDRA:16, SQL:3, OTHER:1076), CASSANDRA:14, OTHER:27)",
        "CHANGE: 10, DELETE: 2, FETCH: 0",
        "Passwords should be logged as * in all logs",
    ],
)
def test_ordinary_messages_are_untouched(text: str) -> None:
    assert sanitize(text) == text


secrets = st.text(
    alphabet=st.characters(
        min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\"'&,;<>)}]\\"
    ),
    min_size=6,
    max_size=30,
)


@settings(max_examples=150)
@given(secret=secrets, user=st.from_regex(r"[a-z]{1,8}@example\.org", fullmatch=True))
def test_no_secret_survives(secret: str, user: str) -> None:
    b64 = base64.b64encode(f"{user}:{secret}".encode()).decode()
    text = sanitize(
        f"POST /x Authorization: Basic {b64}\n"
        f"doLogin?login={user}&password={secret}&origin=o-push\n"
        f"a1 LOGIN {user} {secret}\n"
        f"<Password>{secret}</Password>"
    )
    assert secret not in text
    assert b64 not in text
    assert user in text
