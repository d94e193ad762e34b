"""Out-of-office over ManageSieve against the real Dovecot (Pigeonhole): the settings round
trip, the user's own script kept running and restored, and real auto-replies at delivery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from opush.backends.interfaces import BackendUnavailable
from opush.backends.sieve import (
    SCRIPT_NAME,
    ManageSieve,
    OofMessage,
    OofSettings,
    SieveError,
    SieveOof,
    render_script,
)
from tests.support.services import LocalServices, new_address

pytestmark = pytest.mark.integration


@pytest.fixture
def postfix_and_dovecot(dovecot: LocalServices, postfix: LocalServices) -> LocalServices:
    return dovecot


@pytest.fixture
def colleague(dovecot: LocalServices) -> Iterator[str]:
    user = new_address("oofpeer")
    yield user
    dovecot.remove_mailbox(user)


def _sieve(services: LocalServices) -> ManageSieve:
    return ManageSieve(reactor, services.host, services.sieve_port, timeout=10)


def _inbox_subjects(services: LocalServices, user: str) -> list[str]:
    with services.imap(user) as imap:
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return [
        part[1].decode().split(":", 1)[1].strip()
        for part in data
        if isinstance(part, tuple) and b":" in part[1]
    ]


async def _pause(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def _wait_for_subject(services: LocalServices, user: str, subject: str) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if subject in _inbox_subjects(services, user):
            return True
        await _pause(0.2)
    return False


@pytest_twisted.ensureDeferred
async def test_settings_round_trip_and_checkscript(dovecot: LocalServices, fresh_user: str) -> None:
    oof = SieveOof(_sieve(dovecot))
    assert await oof.get(fresh_user, "secret") == OofSettings()
    now = datetime.now(UTC).replace(microsecond=0)
    wanted = OofSettings(
        state=2,
        start=now - timedelta(hours=1),
        end=now + timedelta(days=3),
        internal=OofMessage(True, "Back on Monday.\n.\nAlice"),
        external_known=OofMessage(False, "known"),
        external_unknown=OofMessage(True, "<b>Away</b> until Monday", html=True),
    )
    await oof.set(fresh_user, "secret", wanted, address=fresh_user, domain="example.org")
    assert await oof.get(fresh_user, "secret") == wanted
    session = await _sieve(dovecot).open(fresh_user, "secret")
    try:
        assert dict(await session.list_scripts()) == {SCRIPT_NAME: True}
    finally:
        await session.logout()
    await oof.set(fresh_user, "secret", OofSettings(), address=fresh_user, domain="example.org")
    assert (await oof.get(fresh_user, "secret")).state == 0


@pytest_twisted.ensureDeferred
async def test_a_users_own_script_keeps_running_and_comes_back(
    dovecot: LocalServices, fresh_user: str
) -> None:
    session = await _sieve(dovecot).open(fresh_user, "secret")
    mine = 'require ["fileinto"];\r\nif header :contains "subject" "junk" { fileinto "Trash"; }\r\n'
    await session.put_script("mine", mine)
    await session.set_active("mine")
    await session.logout()

    oof = SieveOof(_sieve(dovecot))
    on = OofSettings(state=1, internal=OofMessage(True, "away"))
    await oof.set(fresh_user, "secret", on, address=fresh_user, domain="example.org")
    session = await _sieve(dovecot).open(fresh_user, "secret")
    try:
        scripts = dict(await session.list_scripts())
        assert scripts == {"mine": False, SCRIPT_NAME: True}
        assert 'include :personal "mine";' in (await session.get_script(SCRIPT_NAME) or "")
    finally:
        await session.logout()
    # The included filter still files junk away while the out-of-office is on.
    dovecot.deliver(fresh_user, dovecot.message(fresh_user, subject="junk offer"))
    with dovecot.imap(fresh_user) as imap:
        imap.select("Trash", readonly=True)
        _, data = imap.uid("SEARCH", None, "ALL")
    assert (data[0] or b"").split()

    await oof.set(fresh_user, "secret", OofSettings(), address=fresh_user, domain="example.org")
    session = await _sieve(dovecot).open(fresh_user, "secret")
    try:
        assert dict(await session.list_scripts()) == {"mine": True, SCRIPT_NAME: False}
    finally:
        await session.logout()


@pytest_twisted.ensureDeferred
async def test_delivery_sends_the_reply_for_the_senders_audience(
    postfix_and_dovecot: LocalServices, fresh_user: str, colleague: str
) -> None:
    services = postfix_and_dovecot
    oof = SieveOof(_sieve(services))
    now = datetime.now(UTC)
    on = OofSettings(
        state=2,
        start=now - timedelta(minutes=5),
        end=now + timedelta(days=1),
        internal=OofMessage(True, "I am on holiday (internal)."),
        external_unknown=OofMessage(True, "I am on holiday (external)."),
    )
    await oof.set(fresh_user, "secret", on, address=fresh_user, domain="example.org")
    services.deliver(
        fresh_user,
        services.message(fresh_user, subject="lunch?", sender=colleague),
        sender=colleague,
    )
    assert await _wait_for_subject(services, colleague, "Automatic reply")

    # A window in the future sends nothing.
    later = OofSettings(
        state=2,
        start=now + timedelta(days=2),
        end=now + timedelta(days=3),
        internal=OofMessage(True, "later"),
    )
    other = new_address("oofpeer")
    try:
        await oof.set(fresh_user, "secret", later, address=fresh_user, domain="example.org")
        services.deliver(
            fresh_user, services.message(fresh_user, subject="ping", sender=other), sender=other
        )
        await _pause(1.5)
        assert "Automatic reply" not in _inbox_subjects(services, other)
    finally:
        services.remove_mailbox(other)


@pytest_twisted.ensureDeferred
async def test_every_rendered_script_compiles_on_the_server(
    dovecot: LocalServices, fresh_user: str
) -> None:
    session = await _sieve(dovecot).open(fresh_user, "secret")
    try:
        await session.put_script("mine", "keep;\r\n")
        samples = [
            OofSettings(state=1, internal=OofMessage(True, 'quotes " and \\ backslash')),
            OofSettings(state=1, external_unknown=OofMessage(True, "<i>x</i>", html=True)),
            OofSettings(
                state=2,
                start=datetime(2030, 1, 1, tzinfo=UTC),
                end=datetime(2030, 2, 1, tzinfo=UTC),
                internal=OofMessage(True, ".\n..\nend"),
                external_unknown=OofMessage(True, "ext"),
            ),
            OofSettings(state=0, internal=OofMessage(True, "kept")),
        ]
        for sample in samples:
            for previous in (None, "mine"):
                text = render_script(
                    sample, address=fresh_user, domain="example.org", previous=previous
                )
                await session.put_script("probe", text)  # PUTSCRIPT compiles: NO if invalid
    finally:
        await session.logout()


@pytest_twisted.ensureDeferred
async def test_bad_password_and_closed_port(dovecot: LocalServices, fresh_user: str) -> None:
    with pytest.raises(SieveError):
        await SieveOof(_sieve(dovecot)).get("alice@example.org", "wrong")
    closed = ManageSieve(reactor, "127.0.0.1", 1, timeout=2)
    with pytest.raises(BackendUnavailable):
        await SieveOof(closed).get(fresh_user, "secret")
