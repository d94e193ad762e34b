"""Properties of the codec over documents generated from the code pages, and the log renderings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from opush.wbxml import E, WbxmlError, codepages, decode, encode, is_opaque, ns, opaque, set_opaque
from opush.wbxml.logging import full_xml, trimmed_xml

_TAGS = sorted(codepages.BY_QNAME.values(), key=lambda t: (t.page, t.token))
# Any text XML can hold, whitespace and CR included (lxml refuses the other C0 controls).
_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff"
    ).filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20),
    max_size=40,
)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    tag = draw(st.sampled_from(_TAGS))
    el = etree.Element(tag.qname)
    if depth < 4 and draw(st.integers(0, 2)) == 0:
        el.text = draw(st.none() | _TEXT)
        for _ in range(draw(st.integers(1, 4))):
            child = draw(trees(depth + 1))
            child.tail = draw(st.none() | _TEXT)
            el.append(child)
    elif draw(st.integers(0, 4)) == 0:
        set_opaque(el, draw(st.binary(max_size=60)))
    else:
        el.text = draw(st.none() | _TEXT)
    return el


def _exact(el: etree._Element) -> tuple[object, ...]:
    return (
        el.tag,
        dict(el.attrib),
        el.text,
        el.tail,
        tuple(_exact(c) for c in el),
    )


@settings(max_examples=200, deadline=None)
@given(trees())
def test_decode_inverts_encode_exactly(root: etree._Element) -> None:
    data = encode(root)
    back = decode(data)
    root.tail = None
    assert _exact(back) == _exact(root)
    assert encode(back) == data
    for a, b in zip(root.iter(), back.iter(), strict=True):
        if is_opaque(a):
            assert opaque(b) == opaque(a)


@settings(max_examples=100, deadline=None)
@given(trees(), st.sampled_from(codepages.VERSIONS))
def test_encode_with_version_refuses_exactly_the_tags_it_lacks(
    root: etree._Element, version: str
) -> None:
    lacking = [
        el.tag for el in root.iter() if version not in codepages.BY_QNAME[str(el.tag)].versions
    ]
    try:
        encode(root, version=version)
    except WbxmlError as e:
        assert lacking and lacking[0] in str(e)
    else:
        assert not lacking


def _sample() -> etree._Element:
    A, B, M = ns.AIRSYNC, ns.AIRSYNCBASE, ns.EMAIL
    return E(
        A,
        "Sync",
        E(
            A,
            "Collections",
            E(
                A,
                "Collection",
                E(A, "SyncKey", text="1"),
                E(
                    A,
                    "Commands",
                    E(
                        A,
                        "Add",
                        E(A, "ServerId", text="5:1"),
                        E(
                            A,
                            "ApplicationData",
                            E(M, "Subject", text="Salut <b> & co"),
                            E(B, "Body", E(B, "Type", text="1"), E(B, "Data", text="secret")),
                        ),
                    ),
                ),
                E(A, "GetChanges"),
            ),
        ),
    )


def test_full_xml_reads_like_libwbxml_output() -> None:
    assert full_xml(decode(encode(_sample()))) == (
        '<Sync xmlns="AirSync:">\n'
        "  <Collections>\n"
        "    <Collection>\n"
        "      <SyncKey>1</SyncKey>\n"
        "      <Commands>\n"
        "        <Add>\n"
        "          <ServerId>5:1</ServerId>\n"
        "          <ApplicationData>\n"
        '            <Subject xmlns="Email:">Salut &lt;b&gt; &amp; co</Subject>\n'
        '            <Body xmlns="AirSyncBase:">\n'
        "              <Type>1</Type>\n"
        "              <Data>secret</Data>\n"
        "            </Body>\n"
        "          </ApplicationData>\n"
        "        </Add>\n"
        "      </Commands>\n"
        "      <GetChanges/>\n"
        "    </Collection>\n"
        "  </Collections>\n"
        "</Sync>\n"
    )


def test_trimmed_xml_hides_item_content_and_mime() -> None:
    text = trimmed_xml(_sample())
    assert "<ApplicationData>[trimmed_output]</ApplicationData>" in text
    assert "secret" not in text and "Salut" not in text
    assert "<ServerId>5:1</ServerId>" in text
    mail = E(ns.COMPOSEMAIL, "SendMail", E(ns.COMPOSEMAIL, "Mime", text=b"From: a\r\n\r\nhi"))
    assert trimmed_xml(mail) == (
        '<SendMail xmlns="ComposeMail:">\n  <Mime>[trimmed_output]</Mime>\n</SendMail>\n'
    )
    assert "RnJvbTog" in full_xml(mail)  # base64 of the MIME, like wbxml2xml shows it


def test_passwords_never_reach_either_log() -> None:
    settings_req = E(
        ns.SETTINGS,
        "Settings",
        E(
            ns.SETTINGS,
            "DevicePassword",
            E(ns.SETTINGS, "Set", E(ns.SETTINGS, "Password", text="hunter2")),
        ),
    )
    fetch = E(
        ns.ITEMOPERATIONS,
        "ItemOperations",
        E(
            ns.ITEMOPERATIONS,
            "Fetch",
            E(ns.ITEMOPERATIONS, "Options", E(ns.ITEMOPERATIONS, "Password", text="hunter2")),
        ),
    )
    for root in (settings_req, fetch):
        for render in (full_xml, trimmed_xml):
            out = render(root)
            assert "hunter2" not in out and "******" in out
