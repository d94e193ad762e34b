from pathlib import Path

import pytest
from lxml import etree

from opush.content.email import BodyPreference, MimeSupport, parse_options

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus" / "linagora-opush"


def _options(xml: str) -> etree._Element:
    return etree.fromstring(xml)


def test_no_options_gives_defaults() -> None:
    opts = parse_options(None)
    assert opts.body_preferences == ()
    assert opts.mime_support is None


def test_body_preferences_with_truncation_all_or_none_and_preview() -> None:
    opts = parse_options(
        _options(
            '<Options xmlns="AirSync:"><MIMESupport>2</MIMESupport>'
            "<MIMETruncation>8</MIMETruncation>"
            '<BodyPreference xmlns="AirSyncBase:"><Type>2</Type>'
            "<TruncationSize>5120</TruncationSize>"
            "<AllOrNone>1</AllOrNone><Preview>255</Preview></BodyPreference>"
            '<BodyPreference xmlns="AirSyncBase:"><Type>1</Type></BodyPreference>'
            '<BodyPreference xmlns="AirSyncBase:"><Type>1</Type><TruncationSize>9</TruncationSize>'
            "</BodyPreference>"
            '<BodyPartPreference xmlns="AirSyncBase:"><Type>2</Type></BodyPartPreference>'
            "</Options>"
        )
    )
    assert opts.body_preferences == (
        BodyPreference(type=2, truncation_size=5120, all_or_none=True, preview=255),
        BodyPreference(type=1),  # the second Type 1 is ignored (one per Type)
    )
    assert opts.body_part_preferences == (BodyPreference(type=2),)
    assert opts.mime_support is MimeSupport.ALWAYS
    assert opts.mime_truncation == 8


def test_all_or_none_without_truncation_size_is_ignored() -> None:
    opts = parse_options(
        _options(
            '<Options xmlns="AirSync:"><BodyPreference xmlns="AirSyncBase:"><Type>1</Type>'
            "<AllOrNone>1</AllOrNone></BodyPreference></Options>"
        )
    )
    assert opts.body_preferences == (BodyPreference(type=1),)


def test_garbage_values_are_skipped() -> None:
    opts = parse_options(
        _options(
            '<Options xmlns="AirSync:"><MIMESupport>x</MIMESupport><Truncation>99</Truncation>'
            '<BodyPreference xmlns="AirSyncBase:"><TruncationSize>4</TruncationSize>'
            "</BodyPreference>"
            '<BodyPreference xmlns="AirSyncBase:"><Type>1</Type><Preview>9999</Preview>'
            "<TruncationSize>-3</TruncationSize></BodyPreference></Options>"
        )
    )
    assert opts.mime_support is None and opts.truncation is None
    assert opts.body_preferences == (BodyPreference(type=1, preview=255),)


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")
def test_real_device_options_from_the_corpus() -> None:
    # iOS 7 Sync request: MIMESupport 0 with a plain-text preference of 500 bytes.
    tree = etree.parse(str(CORPUS / "ios7-exchange-fetch-deleted-emails" / "029-Sync-request.xml"))
    opts = parse_options(tree.find(".//{AirSync:}Options"))
    assert opts.mime_support is MimeSupport.NEVER
    assert opts.mime_truncation == 1
    assert opts.body_preferences == (BodyPreference(type=1, truncation_size=500),)
