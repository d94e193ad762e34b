"""Cross-checks with an independent codec, Debian's libwbxml2 (wbxml2xml / xml2wbxml).

Hypothesis builds documents from the code pages; ours encodes and libwbxml2 decodes, libwbxml2
encodes and ours decodes; the trees match, and both encoders produce the same bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from opush.wbxml import codepages, decode, encode, set_opaque
from tests.support.wbxml import (
    HAVE_LIBWBXML,
    canon,
    libwbxml_decode,
    libwbxml_encode,
    libwbxml_tokens,
)

pytestmark = pytest.mark.skipif(
    not HAVE_LIBWBXML,
    reason="libwbxml2-utils (wbxml2xml, xml2wbxml) not installed; scripts/bootstrap installs it",
)

#: Tags added after libwbxml2 0.11.8 was written (protocol 16.1, all of the Find page).
NEWER_THAN_LIBWBXML = {
    "{MeetingResponse:}ProposedStartTime",
    "{MeetingResponse:}ProposedEndTime",
    "{Provision:}AccountOnlyRemoteWipe",
} | {t.qname for t in codepages.PAGES[25].tags.values()}


def test_code_pages_agree_with_libwbxml_token_for_token() -> None:
    lib = libwbxml_tokens()
    ours = {(t.page, t.token): t for t in codepages.BY_QNAME.values()}
    # Every token libwbxml2 knows is ours too, with the same name up to its known renamings.
    for (page, token), lib_name in lib.items():
        assert (page, token) in ours, f"libwbxml2 knows {page}:{token:#04x} {lib_name}, we do not"
        expected = codepages.LIBWBXML_NAMES.get((page, lib_name), lib_name)
        assert ours[(page, token)].name == expected, (page, token)
    # And the tokens it lacks are exactly the ones newer than it.
    missing = {t.qname for key, t in ours.items() if key not in lib}
    assert missing == NEWER_THAN_LIBWBXML


_KNOWN = [
    t
    for t in sorted(codepages.BY_QNAME.values(), key=lambda t: (t.page, t.token))
    if t.qname not in NEWER_THAN_LIBWBXML
]
# Values as libwbxml2's XML keeps them: no leading/trailing blanks, no CR, XML characters only.
_TEXT = (
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs", "Cc"),
            blacklist_characters="\ufffe\uffff",
        )
        | st.sampled_from("&<>\"'é漢😀"),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    tag = draw(st.sampled_from(_KNOWN))
    el = etree.Element(tag.qname, nsmap={None: tag.namespace})
    if depth < 3 and draw(st.integers(0, 2)) == 0:
        for _ in range(draw(st.integers(1, 4))):
            el.append(draw(trees(depth + 1)))
    elif tag.opaque:
        set_opaque(el, draw(st.binary(min_size=1, max_size=40)))
    elif draw(st.booleans()):
        el.text = draw(_TEXT)
    return el


_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(trees())
def test_ours_encodes_libwbxml_decodes_to_the_same_tree(root: etree._Element) -> None:
    data = encode(root)
    assert canon(libwbxml_decode(data), libwbxml=True) == canon(root)


@_SETTINGS
@given(trees())
def test_libwbxml_encodes_ours_decodes_to_the_same_tree_and_bytes(root: etree._Element) -> None:
    data = libwbxml_encode(root)
    assert canon(decode(data)) == canon(root)
    # Both encoders write Exchange's canonical form: identical bytes.
    assert encode(root) == data
