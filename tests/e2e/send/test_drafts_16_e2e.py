"""16.1 drafts on a real `twistd -n opush` (Dovecot, Postfix): a draft added with an
attachment gets its FileReference back, an edit keeps what it does not change, and
email2:Send sends it (to a real mailbox) and files it in Sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opush.wbxml import E, decode, ns, set_opaque
from tests.support.send import fetch_all, parse
from tests.support.server import OpushServer, start_server
from tests.support.services import LocalServices
from tests.support.sync import EasDevice, child_text

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
A, B, EM, F, IO = ns.AIRSYNC, ns.AIRSYNCBASE, ns.EMAIL, ns.FOLDERHIERARCHY, ns.ITEMOPERATIONS
PAYLOAD = b"%PDF-1.4 quarterly\x00\x01" * 50


@pytest.fixture
def server(tmp_path: Path, postfix: LocalServices) -> Iterator[OpushServer]:
    s = start_server(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def peer(dovecot: LocalServices) -> Iterator[str]:
    user = dovecot.new_user()
    yield user
    dovecot.remove_mailbox(user)


def test_draft_with_attachment_edited_then_sent(
    server: OpushServer, postfix: LocalServices, fresh_user: str, peer: str
) -> None:
    dev = EasDevice(f"127.0.0.1:{server.http_port}", fresh_user, "DRAFTS161", "16.1")
    dev.client._transport.base_url = server.url
    dev.provision()
    answer = decode(dev.post("FolderSync", E(F, "FolderSync", E(F, "SyncKey", text="0"))).content)
    drafts = next(
        int(a.findtext(f"{{{F}}}ServerId") or 0)
        for a in answer.iter(f"{{{F}}}Add")
        if a.findtext(f"{{{F}}}Type") == "3"
    )
    key = dev.sync(drafts, "0").sync_key or ""
    key = dev.sync(drafts, key).sync_key or key

    content = E(B, "Content")
    set_opaque(content, PAYLOAD)
    add = E(
        A,
        "Add",
        E(A, "ClientId", text="d1"),
        E(
            A,
            "ApplicationData",
            E(EM, "To", text=peer),
            E(EM, "Subject", text="Quarterly numbers"),
            E(B, "Body", E(B, "Type", text=1), E(B, "Data", text="Numbers attached.")),
            E(
                B,
                "Attachments",
                E(
                    B,
                    "Add",
                    E(B, "ClientId", text="a1"),
                    E(B, "DisplayName", text="q3.pdf"),
                    E(B, "Method", text=1),
                    content,
                ),
            ),
        ),
    )
    added = dev.sync(drafts, key, commands=[add])
    (response,) = added.responses()
    assert child_text(response, "Status") == "1"
    server_id = child_text(response, "ServerId") or ""
    attachment = response.find(f"{{{A}}}ApplicationData/{{{B}}}Attachments/{{{B}}}Attachment")
    assert attachment is not None and attachment.findtext(f"{{{B}}}ClientId") == "a1"
    reference = attachment.findtext(f"{{{B}}}FileReference") or ""

    # The FileReference fetches the attachment (ItemOperations, MS-ASCMD 2.2.1.10).
    fetched = dev.post(
        "ItemOperations",
        E(
            IO,
            "ItemOperations",
            E(IO, "Fetch", E(IO, "Store", text="Mailbox"), E(B, "FileReference", text=reference)),
        ),
    )
    root = decode(fetched.content)
    data = root.find(f".//{{{IO}}}Properties/{{{IO}}}Data")
    assert root.findtext(f".//{{{IO}}}Fetch/{{{IO}}}Status") == "1" and data is not None
    import base64

    assert base64.b64decode(data.text or "") == PAYLOAD

    # An edit of the subject only: body and attachment stay (MS-ASCMD 2.2.3.24).
    change = E(A, "Change", E(A, "ServerId", text=server_id),
               E(A, "ApplicationData", E(EM, "Subject", text="Q3 numbers")))  # fmt: skip
    changed = dev.sync(drafts, added.sync_key or "", commands=[change])
    assert changed.status == 1
    (only,) = fetch_all(postfix, fresh_user, "Drafts")
    msg = parse(only[2])
    assert msg["Subject"] == "Q3 numbers" and peer in str(msg["To"])
    assert [a.get_filename() for a in msg.iter_attachments()] == ["q3.pdf"]  # type: ignore[attr-defined]
    assert "Numbers attached." in msg.get_body().get_content()  # type: ignore[attr-defined]

    # email2:Send (MS-ASEMAIL 2.2.2.69) on the next Change: sent, and filed in Sent.
    send = E(A, "Change", E(A, "ServerId", text=server_id),
             E(A, "ApplicationData", E(EM, "Subject", text="Q3 numbers (final)")),
             E(ns.EMAIL2, "Send"))  # fmt: skip
    sent = dev.sync(drafts, changed.sync_key or "", commands=[send])
    assert sent.status == 1
    postfix.wait_for_messages(peer, "SUBJECT", '"Q3 numbers (final)"', count=1, timeout=20)
    (received,) = [d for _, _, d in fetch_all(postfix, peer, "INBOX") if b"Q3 numbers (final)" in d]
    got = parse(received)
    assert [a.get_content() for a in got.iter_attachments()] == [PAYLOAD]  # type: ignore[attr-defined]
    assert fetch_all(postfix, fresh_user, "Drafts") == []
    filed = [d for _, f, d in fetch_all(postfix, fresh_user, "Sent") if b"(final)" in d]
    assert len(filed) == 1
    # The device learns that the draft left Drafts (in this answer or the next).
    after = dev.sync(drafts, sent.sync_key or "")
    told = [child_text(c, "ServerId") for c in [*sent.of("Delete"), *after.of("Delete")]]
    assert told == [server_id]
