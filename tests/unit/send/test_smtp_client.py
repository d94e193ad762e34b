"""The SMTP client's dialogue, driven deterministically: a MemoryReactorClock records the
connection, a StringTransport plays the wire, the test plays the server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from opush.backends.interfaces import BackendUnavailable, Credentials, UserIdentity
from opush.backends.smtp import (
    SendResult,
    SmtpClient,
    SmtpRefused,
    SmtpSettings,
    SmtpUnavailable,
    settings_from_config,
)
from opush.log import DEBUG, levels

CREDS = Credentials(
    UserIdentity(login="alice", domain="example.org", email="alice@example.org"), "s3cr3t-pw"
)


@attrs.define
class Session:
    reactor: MemoryReactorClock
    result: Deferred[SendResult]
    transport: StringTransport
    proto: Any

    def server(self, *lines: str) -> None:
        for line in lines:
            self.proto.dataReceived(line.encode() + b"\r\n")

    def sent(self) -> list[str]:
        # DATA is streamed by a producer (basic.FileSender): run it to the end.
        while self.transport.producer is not None:
            self.transport.producer.resumeProducing()
        out = self.transport.value().decode()
        self.transport.clear()
        return out.split("\r\n")[:-1]

    def outcome(self) -> Any:
        results: list[Any] = []
        self.result.addBoth(results.append)
        assert results, "the send has not finished"
        return results[0]


def start(
    recipients: list[str],
    data: bytes = b"Subject: hi\r\n\r\nhello\r\n",
    credentials: Credentials | None = None,
    **options: Any,
) -> Session:
    reactor = MemoryReactorClock()
    client = SmtpClient(reactor, SmtpSettings(host="smtp.test", port=2525, **options))
    result = Deferred.fromCoroutine(
        client.send("alice@example.org", recipients, data, credentials=credentials)
    )
    host, port, factory, _timeout, _ = reactor.tcpClients[0]
    assert (host, port) == ("smtp.test", 2525)
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return Session(reactor, result, transport, proto)


def handshake(s: Session, *extensions: str) -> None:
    s.server("220 smtp.test ESMTP")
    assert s.sent()[0].startswith("EHLO ")
    lines = ["250-smtp.test", *(f"250-{e}" for e in extensions), "250 8BITMIME"]
    s.server(*lines)


def test_sends_every_recipient_and_dot_stuffs_the_data() -> None:
    s = start(
        ["bob@example.org", "carol@example.org"],
        data=b"Subject: dots\r\n\r\n.leading dot\r\nend\r\n",
    )
    handshake(s)
    assert s.sent() == ["MAIL FROM:<alice@example.org>"]
    s.server("250 ok")
    assert s.sent() == ["RCPT TO:<bob@example.org>"]
    s.server("250 ok")
    assert s.sent() == ["RCPT TO:<carol@example.org>"]
    s.server("250 ok")
    assert s.sent() == ["DATA"]
    s.server("354 go on")
    assert s.sent() == ["Subject: dots", "", "..leading dot", "end", "."]
    s.server("250 queued as 1234")
    result = s.outcome()
    assert isinstance(result, SendResult)
    assert result.recipients == ("bob@example.org", "carol@example.org")


def test_a_refused_recipient_sends_nothing() -> None:
    s = start(["bob@example.org", "user@.invalid"])
    handshake(s)
    s.sent()
    s.server("250 ok")
    s.server("250 ok")
    s.server("501 5.1.3 Bad recipient address syntax")
    assert "DATA" not in s.sent()
    s.server("221 bye")
    failure = s.outcome()
    assert isinstance(failure, Failure) and failure.check(SmtpRefused)
    error = failure.value
    assert error.code == 501
    assert [r[0] for r in error.refused] == ["user@.invalid"]


def test_transient_refusal_is_retry_later() -> None:
    s = start(["bob@example.org"])
    handshake(s)
    s.sent()
    s.server("451 4.3.0 try again later")
    s.server("221 bye")
    failure = s.outcome()
    assert failure.check(SmtpUnavailable) and isinstance(failure.value, BackendUnavailable)
    assert failure.value.code == 451


def test_unreachable_server_is_retry_later() -> None:
    reactor = MemoryReactorClock()
    client = SmtpClient(reactor, SmtpSettings(host="smtp.test", port=2525))
    result = Deferred.fromCoroutine(client.send("a@example.org", ["b@example.org"], b"x\r\n"))
    _, _, factory, _, _ = reactor.tcpClients[0]
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    failures: list[Failure] = []
    result.addErrback(failures.append)
    assert failures[0].check(SmtpUnavailable)
    assert "smtp.test:2525" in str(failures[0].value)


def test_silent_server_times_out() -> None:
    s = start(["bob@example.org"], timeout=5.0)
    s.reactor.advance(4.9)
    assert not s.result.called
    s.reactor.advance(0.2)
    s.proto.connectionLost(Failure(ConnectionRefusedError()))
    failure = s.outcome()
    assert failure.check(SmtpUnavailable) and "no answer" in str(failure.value)


def test_auth_with_the_users_credentials_never_logs_the_password() -> None:
    s = start(["bob@example.org"], credentials=CREDS, auth="user")
    handshake(s, "AUTH PLAIN")
    (auth,) = s.sent()
    verb, mechanism, token = auth.split()
    assert (verb, mechanism) == ("AUTH", "PLAIN")
    assert base64.b64decode(token).endswith(b"\0alice@example.org\0s3cr3t-pw")
    with capturedLogs() as events, levels.override({"opush.backends.smtp": DEBUG}):
        s.server("535 5.7.8 authentication failed")  # twisted tries the other PLAIN form
        assert s.sent()[0].startswith("AUTH PLAIN ")
        s.server("535 5.7.8 authentication failed")
        s.server("221 bye")
        failure = s.outcome()
    assert failure.check(SmtpRefused) and failure.value.code == 535
    logged = repr(events) + str(failure.value)
    assert "s3cr3t-pw" not in logged and token not in logged
    assert "AUTH ********" in logged


def test_starttls_required_but_not_offered_is_refused() -> None:
    s = start(["bob@example.org"], starttls=True)
    handshake(s)
    failure = s.outcome()
    assert failure.check(SmtpRefused)
    assert "TLS" in str(failure.value)


def test_settings_from_mail_conf(tmp_path: Path) -> None:
    from opush.config import load
    from tests.support.config import STANDALONE, write_config

    mail = (
        "smtp.host=mx.example.org\nsmtp.port=587\nsmtp.activateTLS=true\nsmtp.auth=fixed\n"
        "smtp.login=relay\nsmtp.password=relay-pw\nsmtp.timeoutInMs=2500\nimap.host=x\n"
    )
    conf = load(write_config(tmp_path, {**STANDALONE, "mail_conf.ini": mail}))
    got = settings_from_config(conf)
    assert (got.host, got.port, got.starttls, got.auth, got.timeout) == (
        "mx.example.org",
        587,
        True,
        "fixed",
        2.5,
    )
    assert (got.username, got.password) == ("relay", "relay-pw")
    assert "relay-pw" not in repr(got)
    default = settings_from_config(load(write_config(tmp_path / "d", STANDALONE)))
    assert (default.port, default.starttls, default.auth, default.timeout) == (
        25,
        False,
        "none",
        30,
    )
    with pytest.raises(ValueError):
        SmtpSettings(auth="kerberos")


def test_fixed_auth_uses_the_configured_account() -> None:
    s = start(["bob@example.org"], credentials=CREDS, auth="fixed", username="relay", password="pw")
    handshake(s, "AUTH PLAIN")
    (auth,) = s.sent()
    assert base64.b64decode(auth.split()[2]).endswith(b"\0relay\0pw")


lines = st.lists(
    st.text(alphabet=st.sampled_from(list(".ab \t:é")), max_size=12), min_size=1, max_size=8
)


@settings(max_examples=60, deadline=None)
@given(lines)
def test_data_arrives_unchanged_whatever_the_dots(body: list[str]) -> None:
    data = ("Subject: p\r\n\r\n" + "\r\n".join(body) + "\r\n").encode()
    s = start(["bob@example.org"], data=data)
    handshake(s)
    s.sent()
    s.server("250 ok", "250 ok")
    s.sent()
    s.server("354 go on")
    wire = s.sent()
    assert wire[-1] == "."
    unstuffed = [line[1:] if line.startswith(".") else line for line in wire[:-1]]
    assert "\r\n".join(unstuffed) + "\r\n" == data.decode()


def test_starttls_when_configured_and_offered() -> None:
    s = start(["bob@example.org"], starttls=True)
    handshake(s, "STARTTLS")
    assert s.sent() == ["STARTTLS"]


def test_no_starttls_unless_configured() -> None:
    s = start(["bob@example.org"])
    handshake(s, "STARTTLS")
    assert s.sent() == ["MAIL FROM:<alice@example.org>"]
