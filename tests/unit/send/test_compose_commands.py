"""SendMail, SmartReply and SmartForward over doubles: what reaches SMTP, the Sent folder and
the original, and the status of every failure, in both request forms."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import capturedLogs

from opush.backends.smtp import SmtpRefused, SmtpUnavailable
from opush.commands import sendmail, smartforward, smartreply
from opush.http.errors import EasStatusError, classify
from opush.log import DEBUG, levels
from opush.storage.interfaces import HIERARCHY, MappingKind
from tests.support.send import body_text, compose_tree, text_mail
from tests.unit.send.conftest import PASSWORD, Conf, MailConf, World

ALICE = "alice@example.org"
BOB = "bob@example.org"


def attachment_mail(subject: str = "contract") -> bytes:
    msg = EmailMessage()
    msg["From"] = BOB
    msg["To"] = ALICE
    msg["Subject"] = subject
    msg["Message-ID"] = "<orig-1@example.org>"
    msg["Date"] = "Mon, 05 Jan 2026 10:00:00 +0000"
    msg.set_content("Please sign.\n")
    msg.add_attachment(b"PDF\x00" * 50, maintype="application", subtype="pdf", filename="c.pdf")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def parsed(data: bytes) -> Any:
    return email.message_from_bytes(data, policy=default_policy)


async def status_of(coro: Any) -> int:
    with pytest.raises(EasStatusError) as err:
        await coro
    return err.value.status


@pytest_twisted.ensureDeferred
async def test_sendmail_14_envelope_bcc_display_name_and_sent_copy(world: World) -> None:
    mime = text_mail(ALICE, BOB, "hello", "hi\n", cc="carol@example.org", bcc="dan@example.org")
    result = await world.run(sendmail.handle, "SendMail", compose_tree("SendMail", mime))
    assert result.tree is None and result.raw is None and result.code == 200
    (sent,) = world.smtp.sent
    assert sent.mail_from == ALICE
    assert sent.recipients == (BOB, "carol@example.org", "dan@example.org")
    assert sent.credentials is not None and sent.credentials.password == PASSWORD
    headers = parsed(sent.data)
    assert headers["Bcc"] is None and b"dan@example.org" not in sent.data
    assert str(headers["From"]) == "Alice Martin <alice@example.org>"  # OP-157
    assert headers["Message-ID"] and headers["Date"]
    (uid,) = world.store.boxes["Sent"].messages
    assert world.store.boxes["Sent"].messages[uid] == sent.data
    assert world.store.boxes["Sent"].flags[uid] == {"\\Seen"}


@pytest_twisted.ensureDeferred
async def test_without_save_in_sent_nothing_is_kept(world: World) -> None:
    tree = compose_tree("SendMail", text_mail(ALICE, BOB, "s", "b\n"), save_in_sent=False)
    await world.run(sendmail.handle, "SendMail", tree)
    assert len(world.smtp.sent) == 1 and world.store.boxes["Sent"].messages == {}


@pytest_twisted.ensureDeferred
async def test_client_id_resent_is_118_and_sends_once(world: World) -> None:
    tree = compose_tree("SendMail", text_mail(ALICE, BOB, "once", "b\n"), client_id="C-1")
    await world.run(sendmail.handle, "SendMail", tree)
    assert await status_of(world.run(sendmail.handle, "SendMail", tree)) == 118
    assert len(world.smtp.sent) == 1 and world.store.subjects("Sent") == ["once"]
    assert (HIERARCHY, MappingKind.SENDMAIL, "client:C-1") in world.state.maps


@pytest_twisted.ensureDeferred
async def test_12x_raw_mime_resent_with_its_message_id_is_200_once(world: World) -> None:
    mime = text_mail(ALICE, BOB, "legacy", "b\n")
    for _ in range(2):
        result = await world.run(
            sendmail.handle, "SendMail", None, version=(12, 1), body=mime, save_in_sent=True
        )
        assert result.code == 200 and result.tree is None
    assert len(world.smtp.sent) == 1 and world.store.subjects("Sent") == ["legacy"]


@pytest_twisted.ensureDeferred
async def test_smtp_down_is_retry_later_nothing_kept_and_the_retry_sends(world: World) -> None:
    tree = compose_tree("SendMail", text_mail(ALICE, BOB, "outage", "b\n"), client_id="C-2")
    world.smtp.failure = SmtpUnavailable("SMTP 127.0.0.1:25: connection refused")
    with pytest.raises(SmtpUnavailable) as err:
        await world.run(sendmail.handle, "SendMail", tree)
    assert classify(err.value, "SendMail", (16, 1)).body  # Status 111 in the body
    assert classify(err.value, "SendMail", (12, 1)).code == 503
    assert world.store.boxes["Sent"].messages == {} and world.state.maps == {}
    world.smtp.failure = None
    await world.run(sendmail.handle, "SendMail", tree)
    assert len(world.smtp.sent) == 1 and world.store.subjects("Sent") == ["outage"]


@pytest_twisted.ensureDeferred
async def test_smtp_refusal_is_120(world: World) -> None:
    world.smtp.failure = SmtpRefused("550 no", code=550)
    tree = compose_tree("SendMail", text_mail(ALICE, BOB, "refused", "b\n"))
    assert await status_of(world.run(sendmail.handle, "SendMail", tree)) == 120
    assert world.store.boxes["Sent"].messages == {}


@pytest_twisted.ensureDeferred
async def test_over_max_size_is_115_and_nothing_is_sent(world: World) -> None:
    world.config = Conf(MailConf(message_max_size=2000))
    tree = compose_tree("SendMail", text_mail(ALICE, BOB, "big", "x" * 5000 + "\n"))
    assert await status_of(world.run(sendmail.handle, "SendMail", tree)) == 115
    assert world.smtp.sent == []


@pytest_twisted.ensureDeferred
async def test_no_recipient_is_119(world: World) -> None:
    msg = EmailMessage()
    msg["From"] = ALICE
    msg["Subject"] = "nobody"
    msg.set_content("b\n")
    tree = compose_tree("SendMail", msg.as_bytes())
    assert await status_of(world.run(sendmail.handle, "SendMail", tree)) == 119


@pytest_twisted.ensureDeferred
async def test_missing_sent_folder_does_not_fail_the_send(world: World) -> None:
    del world.store.boxes["Sent"]
    world.store.boxes["Sent Items"] = type(world.store.boxes["INBOX"])()
    tree = compose_tree("SendMail", text_mail(ALICE, BOB, "op130", "b\n"))
    with capturedLogs() as events:
        await world.run(sendmail.handle, "SendMail", tree)
    assert len(world.smtp.sent) == 1
    assert any("OP-130" in str(e.get("log_format")) for e in events)


@pytest_twisted.ensureDeferred
async def test_sent_folder_found_by_special_use(world: World) -> None:
    from opush.backends.interfaces import SpecialUse

    box = world.store.boxes.pop("Sent")
    box.special_use = SpecialUse.SENT
    world.store.boxes["Envoyés"] = box
    await world.run(
        sendmail.handle, "SendMail", compose_tree("SendMail", text_mail(ALICE, BOB, "fr", "b\n"))
    )
    assert world.store.subjects("Envoyés") == ["fr"]


@pytest_twisted.ensureDeferred
async def test_failing_append_is_logged_not_fatal(world: World) -> None:
    world.store.fail_append = True
    tree = compose_tree("SendMail", text_mail(ALICE, BOB, "quota", "b\n"))
    result = await world.run(sendmail.handle, "SendMail", tree)
    assert result.code == 200 and len(world.smtp.sent) == 1


@pytest_twisted.ensureDeferred
async def test_mail_data_logs_the_mime_without_credentials(world: World) -> None:
    tree = compose_tree("SendMail", text_mail(ALICE, BOB, "logged", "secret plans\n"))
    with capturedLogs() as events, levels.override({"MAIL.DATA": DEBUG}):
        await world.run(sendmail.handle, "SendMail", tree)
    dumped = [e for e in events if e.get("log_namespace") == "MAIL.DATA"]
    assert dumped and "secret plans" in str(dumped[0]["data"])
    assert PASSWORD not in repr(events)


@pytest_twisted.ensureDeferred
async def test_smartreply_quotes_threads_and_flags_answered(world: World) -> None:
    uid = world.store.add("INBOX", attachment_mail())
    tree = compose_tree(
        "SmartReply",
        text_mail(ALICE, BOB, "Re: contract", "Signed.\n"),
        folder_id="1",
        item_id=f"1:{uid}",
    )
    await world.run(smartreply.handle, "SmartReply", tree)
    (sent,) = world.smtp.sent
    text = body_text(sent.data)
    assert "Signed." in text and "> Please sign." in text
    assert b"c.pdf" not in sent.data  # a reply does not carry attachments
    headers = parsed(sent.data)
    assert headers["In-Reply-To"] == "<orig-1@example.org>"
    assert "<orig-1@example.org>" in headers["References"]
    assert world.store.boxes["INBOX"].flags[uid] == {"\\Answered"}


@pytest_twisted.ensureDeferred
async def test_smartforward_carries_attachments_and_flags_forwarded(world: World) -> None:
    uid = world.store.add("INBOX", attachment_mail())
    tree = compose_tree(
        "SmartForward",
        text_mail(ALICE, "carol@example.org", "Fwd: contract", "FYI\n"),
        folder_id="1",
        item_id=f"1:{uid}",
    )
    await world.run(smartforward.handle, "SmartForward", tree)
    (sent,) = world.smtp.sent
    files = [p for p in parsed(sent.data).walk() if p.get_filename() == "c.pdf"]
    assert [f.get_payload(decode=True) for f in files] == [b"PDF\x00" * 50]
    assert "Please sign." in body_text(sent.data)
    headers = parsed(sent.data)
    assert headers["References"] == "<orig-1@example.org>" and headers["In-Reply-To"] is None
    assert world.store.boxes["INBOX"].flags[uid] == {"$Forwarded"}


@pytest_twisted.ensureDeferred
async def test_replace_mime_sends_the_device_message_as_is(world: World) -> None:
    uid = world.store.add("INBOX", attachment_mail())
    mime = text_mail(ALICE, "carol@example.org", "Fwd: whole", "complete message\n")
    tree = compose_tree("SmartForward", mime, folder_id="1", item_id=f"1:{uid}", replace_mime=True)
    await world.run(smartforward.handle, "SmartForward", tree)
    (sent,) = world.smtp.sent
    assert b"c.pdf" not in sent.data and "Please sign." not in body_text(sent.data)
    assert world.store.boxes["INBOX"].flags[uid] == {"$Forwarded"}


@pytest_twisted.ensureDeferred
async def test_original_gone_is_150_unless_replace_mime(world: World) -> None:
    mime = text_mail(ALICE, BOB, "Re: gone", "b\n")
    tree = compose_tree("SmartReply", mime, folder_id="1", item_id="1:99")
    assert await status_of(world.run(smartreply.handle, "SmartReply", tree)) == 150
    unknown = compose_tree("SmartReply", mime, folder_id="7", item_id="7:1")
    assert await status_of(world.run(smartreply.handle, "SmartReply", unknown)) == 150
    assert world.smtp.sent == []
    replace = compose_tree("SmartReply", mime, folder_id="1", item_id="1:99", replace_mime=True)
    await world.run(smartreply.handle, "SmartReply", replace)
    assert len(world.smtp.sent) == 1


@pytest_twisted.ensureDeferred
async def test_12x_smartforward_with_query_parameters(world: World) -> None:
    uid = world.store.add("INBOX", attachment_mail())
    mime = text_mail(ALICE, "carol@example.org", "Fwd: legacy", "FYI\n")
    await world.run(
        smartforward.handle,
        "SmartForward",
        None,
        version=(12, 1),
        body=mime,
        params={"CollectionId": "1", "ItemId": f"1:{uid}"},
        save_in_sent=True,
    )
    (sent,) = world.smtp.sent
    assert b"c.pdf" in sent.data
    assert world.store.subjects("Sent") == ["Fwd: legacy"]


@pytest_twisted.ensureDeferred
async def test_forwardees_are_added_to_the_recipients(world: World) -> None:
    from opush.wbxml import E, ns

    uid = world.store.add("INBOX", attachment_mail())
    tree = compose_tree(
        "SmartForward",
        text_mail(ALICE, "carol@example.org", "Fwd: more", "FYI\n"),
        folder_id="1",
        item_id=f"1:{uid}",
    )
    cm = ns.COMPOSEMAIL
    tree.append(
        E(
            cm,
            "Forwardees",
            E(
                cm,
                "Forwardee",
                E(cm, "ForwardeeName", text="Dan"),
                E(cm, "ForwardeeEmail", text="dan@example.org"),
            ),
        )
    )
    await world.run(smartforward.handle, "SmartForward", tree)
    (sent,) = world.smtp.sent
    assert sent.recipients == ("carol@example.org", "dan@example.org")


@pytest_twisted.ensureDeferred
async def test_bad_requests(world: World) -> None:
    from opush.wbxml import E, ns

    empty = E(ns.COMPOSEMAIL, "SendMail", E(ns.COMPOSEMAIL, "ClientId", text="x"))
    assert await status_of(world.run(sendmail.handle, "SendMail", empty)) == 101
    wrong_root = compose_tree("SmartReply", b"x")
    assert await status_of(world.run(sendmail.handle, "SendMail", wrong_root)) == 101
    assert (
        await status_of(world.run(sendmail.handle, "SendMail", None, version=(12, 1), body=b" "))
        == 101
    )


@pytest_twisted.ensureDeferred
async def test_from_is_always_the_user(world: World) -> None:
    tree = compose_tree("SendMail", text_mail("ceo@example.org", BOB, "spoof", "pay now\n"))
    await world.run(sendmail.handle, "SendMail", tree)
    (sent,) = world.smtp.sent
    assert str(parsed(sent.data)["From"]) == "Alice Martin <alice@example.org>"
    assert sent.mail_from == ALICE


@pytest_twisted.ensureDeferred
async def test_obm_profile_finds_smtp_through_the_locator(world: World) -> None:
    from opush.backends.smtp import SmtpClient
    from opush.commands.compose import smtp_client

    asked: list[str] = []

    class Hosts:
        async def smtp(self, login_at_domain: str) -> tuple[str, int]:
            asked.append(login_at_domain)
            return "smtp-out.example.org", 25

    ctx = world.context("SendMail")
    del ctx.runtime.services["smtp"]
    ctx.runtime.services["mail_hosts"] = Hosts()
    client = smtp_client(ctx)
    assert isinstance(client, SmtpClient) and ctx.runtime.services["smtp"] is client
    assert await client.server_for(ctx.credentials) == ("smtp-out.example.org", 25)
    assert asked == [ALICE]


@pytest_twisted.ensureDeferred
async def test_no_smtp_configured_is_retry_later(world: World) -> None:
    from opush.commands.compose import smtp_client

    ctx = world.context("SendMail")
    del ctx.runtime.services["smtp"]
    with pytest.raises(SmtpUnavailable):
        smtp_client(ctx)
