"""`opush.backends.smtp.SmtpClient` against the local Postfix (127.0.0.1:2525 -> Dovecot)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from opush.backends.smtp import SmtpClient, SmtpRefused, SmtpSettings, SmtpUnavailable
from tests.support.send import fetch_all, parse, text_mail
from tests.support.services import LocalServices, ServiceControl

pytestmark = pytest.mark.integration


def client(services: LocalServices, **options: Any) -> SmtpClient:
    r: Any = reactor
    settings = SmtpSettings(host=services.host, port=services.smtp_port, timeout=10, **options)
    return SmtpClient(r, settings)


def subjects(services: LocalServices, user: str) -> list[str]:
    return [str(parse(d)["Subject"]) for _, _, d in fetch_all(services, user, "INBOX")]


@pytest_twisted.ensureDeferred
async def test_delivers_to_every_recipient(postfix: LocalServices, fresh_user: str) -> None:
    other = postfix.new_user()
    try:
        subject = f"smtp {uuid.uuid4().hex[:8]}"
        data = text_mail("alice@example.org", fresh_user, subject, ".dot\nline\n")
        result = await client(postfix).send("alice@example.org", [fresh_user, other], data)
        assert set(result.recipients) == {fresh_user, other}
        for user in (fresh_user, other):
            await deferToThread(
                postfix.wait_for_messages, user, "SUBJECT", f'"{subject}"', timeout=20
            )
        (_, _, got), *_ = fetch_all(postfix, fresh_user, "INBOX")
        assert b"\r\n.dot\r\nline\r\n" in got
    finally:
        postfix.remove_mailbox(other)


@pytest_twisted.ensureDeferred
async def test_a_refused_recipient_delivers_to_nobody(
    postfix: LocalServices, fresh_user: str
) -> None:
    subject = f"refused {uuid.uuid4().hex[:8]}"
    data = text_mail("alice@example.org", fresh_user, subject, "x\n")
    with pytest.raises(SmtpRefused) as err:
        await client(postfix).send("alice@example.org", [fresh_user, "user@.invalid"], data)
    assert err.value.code == 501 and err.value.refused[0][0] == "user@.invalid"
    marker = f"marker {uuid.uuid4().hex[:8]}"
    await client(postfix).send(
        "alice@example.org", [fresh_user], text_mail("a@example.org", fresh_user, marker, "x\n")
    )
    await deferToThread(postfix.wait_for_messages, fresh_user, "SUBJECT", f'"{marker}"')
    assert subject not in subjects(postfix, fresh_user)


@pytest_twisted.ensureDeferred
async def test_stopped_postfix_is_retry_later_then_works_again(
    postfix: LocalServices, fresh_user: str, service_control: ServiceControl
) -> None:
    subject = f"down {uuid.uuid4().hex[:8]}"
    data = text_mail("alice@example.org", fresh_user, subject, "x\n")
    await deferToThread(service_control.stop, "postfix")
    try:
        with pytest.raises(SmtpUnavailable):
            await client(postfix).send("alice@example.org", [fresh_user], data)
    finally:
        await deferToThread(service_control.start, "postfix")
    await client(postfix).send("alice@example.org", [fresh_user], data)
    await deferToThread(postfix.wait_for_messages, fresh_user, "SUBJECT", f'"{subject}"')
