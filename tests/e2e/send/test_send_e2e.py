"""Sending mail through a real `twistd -n opush` (demo standalone configuration) into the local
Postfix -> Dovecot, driven by pyactivesync: SendMail (Bcc, Sent copy, ClientId resent),
SmartReply, SmartForward with an attachment, the 12.1 forms (raw MIME bodies, query
parameters) and a 14.1 request encoded by libwbxml2's xml2wbxml, MeetingResponse, and Postfix
stopped then restarted."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_twisted
from pyactivesync import Client
from pyactivesync.exceptions import StatusError
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from opush.commands.registry import REGISTRY
from opush.storage.embedded import EmbeddedStore
from opush.storage.interfaces import FolderKind, FolderRef
from opush.wbxml import decode
from tests.support.mailcmds import STANDARD_FOLDERS, attachment_mail
from tests.support.send import (
    body_text,
    compose_tree,
    fetch_all,
    invitation_mail,
    meeting_response_tree,
    parse,
    post_tree,
    raw_post,
    text_mail,
)
from tests.support.server import OpushServer, start_server
from tests.support.services import LocalServices, ServiceControl
from tests.support.wbxml import HAVE_LIBWBXML, libwbxml_encode

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
T = TypeVar("T")
PAYLOAD = b"%PDF-1.4 contract\x00\x01\x02" * 200


async def blocking(fn: Callable[[], T]) -> T:
    return await deferToThread(fn)


@pytest.fixture
def server(tmp_path: Path, postfix: LocalServices) -> Iterator[OpushServer]:
    s = start_server(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def peer(dovecot: LocalServices) -> Iterator[str]:
    """A second brand-new account: the correspondent of ``fresh_user``."""
    user = dovecot.new_user()
    yield user
    dovecot.remove_mailbox(user)


def device(server: OpushServer, user: str, device_id: str) -> Client:
    c = Client(f"127.0.0.1:{server.http_port}", user, "secret", device_id=device_id, timeout=30)
    c._transport.base_url = server.url
    # start_server returns once the healthcheck answers, which can be just before the state
    # store's schema is installed (the first Provision then gets 111): poll until ready.
    deadline = time.monotonic() + 10
    while True:
        try:
            c.provision()
            return c
        except StatusError as e:
            if e.code != "111" or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def folder_ids(server: OpushServer, c: Client, user: str, device_id: str) -> dict[str, int]:
    """Collection ids as the device knows them: FolderSync when opush has it, else the same
    mapping written into the server's state file (what FolderSync would store)."""
    if "FolderSync" in REGISTRY:
        folders = await blocking(c.list_folders)
        by_type = {int(f.type): f.id for f in folders}
        return {name: int(by_type[kind]) for name, kind in STANDARD_FOLDERS.items()}
    path = server.config_dir.parent / "data" / "opush.sqlite"
    store = EmbeddedStore(path, clock=reactor)  # type: ignore[arg-type]
    try:
        owner = next(d.user for d in await store.list_devices() if d.device_id == device_id)
        out = {}
        for name, kind in STANDARD_FOLDERS.items():
            ref = FolderRef(FolderKind.MAIL, name, name, kind)
            out[name] = await store.allocate_collection(owner, device_id, ref)
        return out
    finally:
        await store.close()


def wait_subject(services: LocalServices, user: str, subject: str, count: int = 1) -> None:
    services.wait_for_messages(user, "SUBJECT", f'"{subject}"', count=count, timeout=20)


def messages(services: LocalServices, user: str, folder: str, subject: str) -> list[bytes]:
    return [
        data
        for _, _, data in fetch_all(services, user, folder)
        if subject in str(parse(data)["Subject"])
    ]


def flags_of(services: LocalServices, user: str, folder: str, uid: int) -> set[str]:
    return next(f for u, f, _ in fetch_all(services, user, folder) if u == uid)


def compose_status(response_body: bytes) -> str | None:
    if not response_body:
        return None
    return decode(response_body).findtext("{ComposeMail:}Status")


@pytest_twisted.ensureDeferred
async def test_send_reply_forward_and_resend_on_twistd(
    server: OpushServer, postfix: LocalServices, fresh_user: str, peer: str
) -> None:
    alice, bob = fresh_user, peer
    hidden = postfix.new_user("bcc")
    c = await blocking(lambda: device(server, alice, "SENDE2E01"))

    # SendMail (16.1 ComposeMail, pyactivesync): To bob, Bcc a third mailbox.
    subject = f"hello {uuid.uuid4().hex[:8]}"
    mail = parse(text_mail(alice, bob, subject, "Lunch at noon?\n", bcc=hidden))
    client_id = uuid.uuid4().hex
    await blocking(lambda: c.send_mail(mail, client_id=client_id))
    wait_subject(postfix, bob, subject)
    wait_subject(postfix, hidden, subject)
    (received,) = messages(postfix, bob, "INBOX", subject)
    (copy,) = messages(postfix, alice, "Sent", subject)
    for data in (received, copy):
        headers = parse(data)
        assert headers["Bcc"] is None and hidden not in data.decode("utf-8", "replace")
        assert alice in str(headers["From"])
    assert b"Lunch at noon?" in received

    # The same ClientId again (a retry after a lost response): 118, nothing sent.
    with pytest.raises(StatusError) as again:
        await blocking(lambda: c.send_mail(mail, client_id=client_id))
    assert again.value.code == "118"
    marker = f"marker {uuid.uuid4().hex[:8]}"
    await blocking(lambda: c.send_mail(parse(text_mail(alice, bob, marker, "after\n"))))
    wait_subject(postfix, bob, marker)
    assert len(messages(postfix, bob, "INBOX", subject)) == 1
    assert len(messages(postfix, alice, "Sent", subject)) == 1

    # bob writes to alice with an attachment; alice replies and forwards it.
    original_subject = f"contract {uuid.uuid4().hex[:8]}"
    postfix.deliver(
        alice, attachment_mail(alice, original_subject, "Please sign.\n", PAYLOAD, "c.pdf")
    )
    ids = await folder_ids(server, c, alice, "SENDE2E01")
    inbox = ids["INBOX"]
    (uid,) = [u for u, _, d in fetch_all(postfix, alice, "INBOX") if original_subject.encode() in d]
    original_id = parse(messages(postfix, alice, "INBOX", original_subject)[0])["Message-ID"]

    reply = text_mail(alice, bob, f"Re: {original_subject}", "Signed, see you.\n")
    response = await blocking(
        lambda: post_tree(
            c,
            "SmartReply",
            compose_tree("SmartReply", reply, folder_id=str(inbox), item_id=f"{inbox}:{uid}"),
        )
    )
    assert response.status_code == 200 and compose_status(response.content) is None
    wait_subject(postfix, bob, f"Re: {original_subject}")
    (got,) = messages(postfix, bob, "INBOX", f"Re: {original_subject}")
    text = body_text(got)
    assert "Signed, see you." in text and "> Please sign." in text
    assert parse(got)["In-Reply-To"] == original_id
    assert original_id in str(parse(got)["References"])
    assert "\\Answered" in flags_of(postfix, alice, "INBOX", uid)

    forward = text_mail(alice, bob, f"Fwd: {original_subject}", "FYI\n")
    response = await blocking(
        lambda: post_tree(
            c,
            "SmartForward",
            compose_tree("SmartForward", forward, folder_id=str(inbox), item_id=f"{inbox}:{uid}"),
        )
    )
    assert response.status_code == 200 and compose_status(response.content) is None
    wait_subject(postfix, bob, f"Fwd: {original_subject}")
    (fwd,) = messages(postfix, bob, "INBOX", f"Fwd: {original_subject}")
    attachments = [p for p in parse(fwd).walk() if p.get_filename() == "c.pdf"]
    assert [a.get_payload(decode=True) for a in attachments] == [PAYLOAD]
    assert "$Forwarded" in flags_of(postfix, alice, "INBOX", uid)
    assert len(messages(postfix, alice, "Sent", original_subject)) == 2


@pytest_twisted.ensureDeferred
async def test_12_1_raw_mime_and_libwbxml_requests(
    server: OpushServer, postfix: LocalServices, fresh_user: str, peer: str
) -> None:
    alice, bob = fresh_user, peer
    c = await blocking(lambda: device(server, alice, "SENDE2E12"))

    subject = f"legacy {uuid.uuid4().hex[:8]}"
    response = await blocking(
        lambda: raw_post(
            c,
            "SendMail",
            text_mail(alice, bob, subject, "raw MIME body\n"),
            version="12.1",
            content_type="message/rfc822",
            params={"SaveInSent": "T"},
        )
    )
    assert response.status_code == 200 and response.content == b""
    wait_subject(postfix, bob, subject)
    assert len(messages(postfix, alice, "Sent", subject)) == 1

    original_subject = f"question {uuid.uuid4().hex[:8]}"
    postfix.deliver(alice, text_mail(bob, alice, original_subject, "Are you in?\n"))
    ids = await folder_ids(server, c, alice, "SENDE2E12")
    inbox = ids["INBOX"]
    (uid,) = [u for u, _, d in fetch_all(postfix, alice, "INBOX") if original_subject.encode() in d]

    reply_subject = f"Re: {original_subject}"
    response = await blocking(
        lambda: raw_post(
            c,
            "SmartReply",
            text_mail(alice, bob, reply_subject, "Yes.\n"),
            version="12.1",
            content_type="message/rfc822",
            params={"CollectionId": str(inbox), "ItemId": f"{inbox}:{uid}", "SaveInSent": "F"},
        )
    )
    assert response.status_code == 200
    wait_subject(postfix, bob, reply_subject)
    assert "> Are you in?" in body_text(messages(postfix, bob, "INBOX", reply_subject)[0])
    assert messages(postfix, alice, "Sent", reply_subject) == []
    assert "\\Answered" in flags_of(postfix, alice, "INBOX", uid)

    if not HAVE_LIBWBXML:
        pytest.skip("libwbxml2's xml2wbxml is not installed")
    fwd_subject = f"Fwd: {original_subject}"
    tree = compose_tree(
        "SmartForward",
        text_mail(alice, bob, fwd_subject, "see below\n"),
        folder_id=str(inbox),
        item_id=f"{inbox}:{uid}",
    )
    body = libwbxml_encode(tree)  # libwbxml2 writes Mime (base64 in its XML) as OPAQUE
    response = await blocking(lambda: raw_post(c, "SmartForward", body, version="14.1"))
    assert response.status_code == 200 and compose_status(response.content) is None
    wait_subject(postfix, bob, fwd_subject)
    assert "Are you in?" in body_text(messages(postfix, bob, "INBOX", fwd_subject)[0])


@pytest_twisted.ensureDeferred
async def test_meeting_response_sends_imip_reply(
    server: OpushServer, postfix: LocalServices, fresh_user: str, peer: str
) -> None:
    attendee, organizer = fresh_user, peer
    c = await blocking(lambda: device(server, attendee, "SENDE2EMR"))
    event_uid = f"{uuid.uuid4().hex}@example.org"
    summary = f"Review {uuid.uuid4().hex[:8]}"
    postfix.deliver(attendee, invitation_mail(organizer, attendee, event_uid, summary))
    ids = await folder_ids(server, c, attendee, "SENDE2EMR")
    inbox = ids["INBOX"]
    (uid,) = [u for u, _, _ in fetch_all(postfix, attendee, "INBOX")]

    tree = meeting_response_tree([(1, str(inbox), f"{inbox}:{uid}")])
    if HAVE_LIBWBXML:
        body = libwbxml_encode(tree)
        response = await blocking(lambda: raw_post(c, "MeetingResponse", body, version="12.1"))
    else:
        response = await blocking(lambda: post_tree(c, "MeetingResponse", tree, "12.1"))
    assert response.status_code == 200
    result = decode(response.content)
    assert result.findtext(".//{MeetingResponse:}Status") == "1"
    assert result.findtext(".//{MeetingResponse:}RequestId") == f"{inbox}:{uid}"

    wait_subject(postfix, organizer, f"Accepted: {summary}")
    (reply,) = messages(postfix, organizer, "INBOX", f"Accepted: {summary}")
    calendar = next(p for p in parse(reply).walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "REPLY"
    ics = calendar.get_content().replace("\r\n ", "")  # unfolded (RFC 5545 3.1)
    assert "METHOD:REPLY" in ics and f"UID:{event_uid}" in ics
    assert "PARTSTAT=ACCEPTED" in ics and f"mailto:{attendee}" in ics
    # The answered request left the Inbox for Deleted Items.
    assert fetch_all(postfix, attendee, "INBOX") == []
    assert len(fetch_all(postfix, attendee, "Trash")) == 1


@pytest_twisted.ensureDeferred
async def test_smtp_down_then_retry_succeeds(
    server: OpushServer,
    postfix: LocalServices,
    fresh_user: str,
    peer: str,
    service_control: ServiceControl,
) -> None:
    alice, bob = fresh_user, peer
    c = await blocking(lambda: device(server, alice, "SENDE2EDOWN"))
    subject = f"outage {uuid.uuid4().hex[:8]}"
    mime = text_mail(alice, bob, subject, "will it go?\n")
    client_id = uuid.uuid4().hex
    tree = compose_tree("SendMail", mime, client_id=client_id)

    service_control.stop("postfix")
    try:
        response = await blocking(lambda: post_tree(c, "SendMail", tree))
        assert response.status_code == 200
        assert compose_status(response.content) == "111"
        legacy = await blocking(
            lambda: raw_post(
                c,
                "SendMail",
                mime,
                version="12.1",
                content_type="message/rfc822",
                params={"SaveInSent": "T"},
            )
        )
        assert legacy.status_code == 503 and legacy.headers.get("Retry-After")
        assert messages(postfix, alice, "Sent", subject) == []
        assert "SMTP 127.0.0.1:2525" in server.log_text()
    finally:
        service_control.start("postfix")

    response = await blocking(lambda: post_tree(c, "SendMail", tree))
    assert response.status_code == 200 and compose_status(response.content) is None
    wait_subject(postfix, bob, subject)
    assert len(messages(postfix, alice, "Sent", subject)) == 1
