"""EAS contacts <-> OBM contacts: round trips keep every field OBM can hold, OP-246, OP-139
hash, real device traffic from the corpus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml.etree import _Element

from opush.backends.obmsync import xml as obm
from opush.content import contacts as cn
from opush.wbxml import E, decode, encode, ns

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"

text = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "P", "Zs"), exclude_characters="\r\x85\u2028\u2029<>"
    ),
    min_size=1,
    max_size=25,
).filter(lambda s: s.strip() == s and s != "")
emails = st.from_regex(r"[a-z]{1,8}@[a-z]{1,6}\.(org|com)", fullmatch=True)
dates = st.integers(-(10**12), 4 * 10**12).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)
addresses = st.builds(
    cn.Address,
    street=st.none() | text,
    city=st.none() | text,
    postal_code=st.none() | text,
    state=st.none() | text,
    country=st.none() | text,
).filter(lambda a: not a.empty)

items = st.builds(
    cn.ContactItem,
    fields=st.dictionaries(st.sampled_from([n for _, n, _ in cn.SCALARS]), text),
    phones=st.dictionaries(st.sampled_from([n for n, _, _ in cn.PHONES]), text),
    emails=st.lists(emails, max_size=3).map(tuple),
    ims=st.lists(emails, max_size=3).map(tuple),
    addresses=st.dictionaries(st.sampled_from(["Business", "Home", "Other"]), addresses),
    web_page=st.none() | text,
    birthday=st.none() | dates,
    anniversary=st.none() | dates,
    body=st.none() | text,
)


@settings(max_examples=100, deadline=None)
@given(items)
def test_eas_contact_to_obm_and_back_keeps_every_field(item: cn.ContactItem) -> None:
    contact = cn.to_contact(item, book_id=3)
    stored = obm.parse_single_contact(
        obm.parse_document(obm.serialize(obm.write_contact(None, contact)))
    )
    assert cn.from_contact(stored) == item


@settings(max_examples=100, deadline=None)
@given(items, st.sampled_from([(12, 1), (14, 0), (14, 1), (16, 1)]))
def test_rendered_contact_survives_wbxml_and_parses_back(
    item: cn.ContactItem, version: tuple[int, int]
) -> None:
    data = E(ns.AIRSYNC, "ApplicationData", *cn.render_item(item, version))
    wire = decode(encode(E(ns.AIRSYNC, "Sync", data), version=f"{version[0]}.{version[1]}"))
    assert cn.parse_item(wire[0]) == item


@settings(max_examples=60, deadline=None)
@given(items)
def test_content_hash_depends_on_content_only(item: cn.ContactItem) -> None:
    data = E(ns.AIRSYNC, "ApplicationData", *cn.render_item(item, (14, 1)))
    assert cn.content_hash(cn.parse_item(data)) == cn.content_hash(item)


def test_job_title_stays_out_of_the_display_name_op246() -> None:
    obm_contact = obm.Contact(first="Ann", last="Lee", title="CTO", company="ACME")
    item = cn.from_contact(obm_contact)
    assert item.fields["JobTitle"] == "CTO"
    assert "Title" not in item.fields
    assert cn.display_name(item) == "Ann Lee"


def test_pref_labels_and_unknown_labels_are_not_lost() -> None:
    contact = obm.Contact(
        phones=(
            obm.Phone("PREF;CELL;VOICE;X-OBM-Ref1", "+331"),
            obm.Phone("CELL;VOICE;X-OBM-Ref2", "+332"),
            obm.Phone("WORK;VOICE;X-OBM-Ref1", "+333"),
        ),
        emails=(
            obm.EmailAddress("INTERNET;X-OBM-Ref2", "b@x.org"),
            obm.EmailAddress("INTERNET;X-OBM-Ref1", "a@x.org"),
        ),
    )
    item = cn.from_contact(contact)
    assert item.phones["MobilePhoneNumber"] == "+331"
    assert item.phones["BusinessPhoneNumber"] == "+333"
    assert "+332" in item.phones.values()
    assert item.emails == ("a@x.org", "b@x.org")


# -------------------------------------------------------------------------- device traffic


def _contact_adds(path: Path) -> list[_Element]:
    root = decode(path.read_bytes())
    return [
        data
        for data in root.iter(f"{{{ns.AIRSYNC}}}ApplicationData")
        if any(child.tag.startswith(f"{{{ns.CONTACTS}}}") for child in data)
    ]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus not available")
def test_android_full_contact_add_from_the_corpus() -> None:
    request = CORPUS / "linagora-opush/gsGN-exchange-create-full-contact/001-Sync-request.wbxml"
    (data,) = _contact_adds(request)
    item = cn.parse_item(data)
    assert item.emails == ("email@dom.com",)
    assert item.fields["JobTitle"] == "Title2"
    assert item.phones == {
        "MobilePhoneNumber": "06 06 06 06 06",
        "HomePhoneNumber": "01 01 01 01 01",
    }
    contact = cn.to_contact(item)
    assert (contact.first, contact.last, contact.title, contact.company) == (
        "First",
        "Last",
        "Title2",
        "Enterprise",
    )


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus not available")
def test_every_contact_in_the_corpus_parses_and_converts() -> None:
    seen = 0
    for path in sorted(CORPUS.rglob("*.wbxml")):
        try:
            found = _contact_adds(path)
        except Exception:
            continue  # not a document our decoder reads on its own (fragments)
        for data in found:
            item = cn.parse_item(data)
            cn.from_contact(cn.to_contact(item))
            seen += 1
    assert seen >= 3
