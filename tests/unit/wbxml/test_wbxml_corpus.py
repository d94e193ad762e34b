"""Real device and Exchange traffic (../shared/corpus): every body decodes to libwbxml2's
document and re-encodes to the very same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from opush.wbxml import decode, encode
from tests.support.wbxml import CORPUS, canon, corpus_files, parse_xml

FILES = corpus_files()

pytestmark = pytest.mark.skipif(not FILES, reason=f"WBXML corpus not found at {CORPUS}")

#: Bodies whose encoder did not use Exchange's canonical form, and what it should have been.
NON_CANONICAL = {
    # Java opush's own Provision response (README "testdata-opush-server"): it encodes the four
    # empty elements as content tag + END (57 01, 59 01, 77 01, 79 01) where Exchange writes a
    # bare tag (17, 19, 37, 39). Same document as Exchange 2007's ex2k7provResp1.wbxml, which is
    # byte for byte what we write.
    "linagora-opush/testdata-opush-server/001-Provision-response.wbxml": (
        "linagora-opush/testdata-iphone-exchange2007/001-Provision-response.wbxml"
    ),
}


def _id(path: Path) -> str:
    return str(path.relative_to(CORPUS))


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_corpus_body_decodes_like_libwbxml_and_reencodes_identically(path: Path) -> None:
    data = path.read_bytes()
    root = decode(data)
    reference = path.with_suffix(".xml")
    if reference.exists():
        # The .xml is wbxml2xml's decoding (-m 1 -i 2): compared modulo its documented lossiness
        # (trimmed values, dropped blank values, CR turned into LF) and its tag names.
        assert canon(root) == canon(parse_xml(reference.read_bytes()), libwbxml=True)
    name = _id(path)
    if name in NON_CANONICAL:
        assert encode(root) == (CORPUS / NON_CANONICAL[name]).read_bytes()
        assert encode(root) != data
    else:
        assert encode(root) == data


def test_corpus_is_complete() -> None:
    # 739 bodies per README; a partial checkout would silently test less.
    assert len(FILES) >= 739
