"""vCard <-> ContactItem (opush.content.vcard): round trips, real-world cards, merging."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from opush.content.contacts import Address, ContactItem
from opush.content.vcard import PHONE_TYPES, format_vcard, parse_vcard

_text = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)
_fields = st.dictionaries(
    st.sampled_from(["FirstName", "LastName", "MiddleName", "Suffix", "JobTitle", "Department",
                     "CompanyName", "AssistantName", "Spouse", "NickName", "ManagerName"]),
    _text,
    max_size=8,
)  # fmt: skip
_phones = st.dictionaries(st.sampled_from([n for n, _ in PHONE_TYPES]), _text, max_size=6)
_address = st.builds(
    Address,
    street=st.one_of(st.none(), _text),
    city=st.one_of(st.none(), _text),
    postal_code=st.one_of(st.none(), _text),
    state=st.one_of(st.none(), _text),
    country=st.one_of(st.none(), _text),
).filter(lambda a: not a.empty)
_day = st.dates(min_value=datetime(1900, 1, 1).date(), max_value=datetime(2100, 1, 1).date()).map(
    lambda d: datetime(d.year, d.month, d.day, tzinfo=UTC)
)


@settings(max_examples=200, deadline=None)
@given(
    _fields,
    _phones,
    st.lists(_text.map(lambda t: t.replace(" ", "") + "@example.org"), max_size=3),
    st.dictionaries(st.sampled_from(["Business", "Home", "Other"]), _address, max_size=3),
    st.one_of(st.none(), st.just("https://example.org/~ann")),
    st.one_of(st.none(), _day),
    st.one_of(st.none(), _day),
    st.one_of(st.none(), st.text(max_size=60).filter(lambda t: t.strip() == t and t)),
)
def test_contact_survives_a_vcard(
    fields: dict[str, str],
    phones: dict[str, str],
    emails: list[str],
    addresses: dict[str, Address],
    web: str | None,
    birthday: datetime | None,
    anniversary: datetime | None,
    body: str | None,
) -> None:
    item = ContactItem(
        fields=fields,
        phones=phones,
        emails=tuple(emails),
        addresses=addresses,
        web_page=web,
        birthday=birthday,
        anniversary=anniversary,
        body=body.replace("\r", "") if body else None,
    )
    text = format_vcard(item, uid="u-1")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert parse_vcard(text) == item


def test_apple_style_card_with_groups_and_types() -> None:
    card = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 16.0//EN\r\n"
        "N:Durand;Bob;;;\r\nFN:Bob Durand\r\nORG:ACME;Sales\r\nTITLE:CTO\r\n"
        "item1.EMAIL;type=INTERNET;type=pref:bob@example.org\r\nitem1.X-ABLabel:_$!<Other>!$_\r\n"
        "TEL;type=CELL;type=VOICE;type=pref:+33 6 00 00 00 01\r\nTEL;type=WORK;type=VOICE:01 23\r\n"
        "TEL;type=HOME;type=FAX:09 87\r\nADR;type=HOME;type=pref:;;1 rue de la Paix\\n3e étage;"
        "Paris;;75002;France\r\nBDAY:1980-05-17\r\nNOTE:line one\\nline two\\, with comma\r\n"
        "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQ\r\nEND:VCARD\r\n"
    )
    item = parse_vcard(card)
    assert item is not None
    assert item.fields == {
        "LastName": "Durand",
        "FirstName": "Bob",
        "CompanyName": "ACME",
        "Department": "Sales",
        "JobTitle": "CTO",
    }
    assert "FileAs" not in item.fields  # FN is just the names (and never the title, OP-246)
    assert item.phones == {
        "MobilePhoneNumber": "+33 6 00 00 00 01",
        "BusinessPhoneNumber": "01 23",
        "HomeFaxNumber": "09 87",
    }
    assert item.addresses["Home"] == Address(
        street="1 rue de la Paix\n3e étage", city="Paris", postal_code="75002", country="France"
    )
    assert item.birthday == datetime(1980, 5, 17, tzinfo=UTC)
    assert item.body == "line one\nline two, with comma"
    # A device Change keeps what opush does not model (the photo, Apple's labels).
    merged = format_vcard(item, uid="x", existing=card)
    assert "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQ" in merged and "X-ABLabel" in merged
    assert merged.count("TITLE:") == 1


def test_vcard_21_quoted_printable_and_garbage() -> None:
    card = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=A9r=C3=B4me;"
        "Ann\r\nTEL;WORK;VOICE:555\r\nEND:VCARD\r\n"
    )
    item = parse_vcard(card)
    assert item is not None and item.fields["LastName"] == "Jérôme"
    assert item.phones == {"BusinessPhoneNumber": "555"}
    assert parse_vcard("not a card") is None
    assert parse_vcard("") is None


def test_file_as_differs_from_the_names_is_the_fn() -> None:
    item = ContactItem(fields={"FirstName": "Ann", "LastName": "Lee", "FileAs": "Lee, Ann"})
    text = format_vcard(item, uid="a")
    assert "FN:Lee\\, Ann" in text
    assert parse_vcard(text) == item
