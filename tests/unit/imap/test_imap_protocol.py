"""The IMAP client protocol: framing, literals, timeouts, drops, logging."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent

from opush.backends.imap.parser import TooLarge, fetch_items
from opush.backends.imap.pool import ImapSettings, open_session
from opush.backends.imap.protocol import ImapProtocol, Literal, Result
from opush.backends.interfaces import AuthenticationFailed, MailBackendUnavailable
from opush.log import DEBUG, levels
from tests.support.imap import ScriptedImapServer, Wire, login_script


def connected(timeout: float | None = 5.0) -> tuple[ImapProtocol, StringTransport, Clock]:
    clock = Clock()
    proto = ImapProtocol(clock, timeout)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"* OK [CAPABILITY IMAP4rev1 IDLE] hello\r\n")
    return proto, transport, clock


def result_of(d: defer.Deferred[Result]) -> Result:
    results: list[Result] = []
    d.addCallback(results.append)
    assert results, "command did not complete"
    return results[0]


def failure_of(d: defer.Deferred[Result]) -> BaseException:
    failures: list[BaseException] = []
    d.addErrback(lambda f: failures.append(f.value))
    assert failures, "command did not fail"
    return failures[0]


def test_greeting_capabilities_and_tagging() -> None:
    proto, transport, _ = connected()
    assert proto.capabilities == {"IMAP4REV1", "IDLE"}
    d = proto.command(b"NOOP")
    assert transport.value() == b"A0001 NOOP\r\n"
    proto.dataReceived(b"* 3 EXISTS\r\nA0001 OK done\r\n")
    result = result_of(d)
    assert result.tagged.kind == "OK"
    assert [(r.kind, r.number) for r in result.untagged] == [("EXISTS", 3)]


def test_commands_are_serialized() -> None:
    proto, transport, _ = connected()
    first = proto.command(b"NOOP")
    second = proto.command(b"CHECK")
    assert transport.value() == b"A0001 NOOP\r\n"
    transport.clear()
    proto.dataReceived(b"A0001 OK\r\n")
    assert transport.value() == b"A0002 CHECK\r\n"
    proto.dataReceived(b"A0002 OK\r\n")
    assert result_of(first).tagged.tag == "A0001"
    assert result_of(second).tagged.tag == "A0002"


@settings(max_examples=100)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_literal_split_anywhere_across_packets(cuts: list[int]) -> None:
    proto, _, _ = connected()
    d = proto.command(b"UID FETCH 7 BODY.PEEK[]")
    body = b'Subject: x\r\n\r\n)("{2}\r\nNIL\r\n'
    data = b"* 1 FETCH (UID 7 BODY[] {%d}\r\n%s)\r\nA0001 OK\r\n" % (len(body), body)
    pos = 0
    for cut in cuts:
        proto.dataReceived(data[pos : pos + cut])
        pos += cut
    proto.dataReceived(data[pos:])
    (fetch,) = result_of(d).of_kind("FETCH")
    assert fetch_items(fetch.data)["BODY[]"] == body


def test_literal_over_the_limit_is_dropped_not_buffered() -> None:
    proto, _, _ = connected()
    d = proto.command(b"UID FETCH 7 BODY.PEEK[]", literal_limit=10)
    proto.dataReceived(b"* 1 FETCH (UID 7 BODY[] {50}\r\n" + b"x" * 50 + b")\r\nA0001 OK\r\n")
    (fetch,) = result_of(d).of_kind("FETCH")
    assert fetch_items(fetch.data)["BODY[]"] == TooLarge(50)


def test_synchronizing_literal_waits_for_continuation() -> None:
    proto, transport, _ = connected()
    d = proto.command(b"APPEND", b'"INBOX"', Literal(b"hello"))
    assert transport.value() == b'A0001 APPEND "INBOX" {5}\r\n'
    transport.clear()
    proto.dataReceived(b"+ go\r\n")
    assert transport.value() == b"hello\r\n"
    proto.dataReceived(b"A0001 OK [APPENDUID 1 4] done\r\n")
    assert result_of(d).code("APPENDUID") == ["APPENDUID", "1", "4"]


def test_literal_plus_sends_at_once() -> None:
    proto, transport, _ = connected()
    proto.set_capabilities(["IMAP4rev1", "LITERAL+"])
    proto.command(b"UID SEARCH CHARSET UTF-8 TEXT", Literal("é".encode()), b"UNDELETED")
    assert (
        transport.value() == b"A0001 UID SEARCH CHARSET UTF-8 TEXT {2+}\r\n\xc3\xa9 UNDELETED\r\n"
    )


def test_timeout_fails_every_pending_command_and_aborts() -> None:
    proto, transport, clock = connected(timeout=5.0)
    first = proto.command(b"UID FETCH 1:* (FLAGS)")
    queued = proto.command(b"NOOP")
    clock.advance(4.9)
    assert not first.called
    clock.advance(0.2)
    assert transport.disconnecting
    proto.connectionLost()
    for d in (first, queued):
        err = failure_of(d)
        assert isinstance(err, MailBackendUnavailable)
        assert "timed out" in str(err)
    assert isinstance(failure_of(proto.command(b"NOOP")), MailBackendUnavailable)


def test_timeout_is_about_silence_not_transfer_time() -> None:
    proto, transport, clock = connected(timeout=5.0)
    d = proto.command(b"UID FETCH 1 BODY.PEEK[]")
    proto.dataReceived(b"* 1 FETCH (UID 1 BODY[] {30}\r\n")
    for _ in range(3):  # 12 s in total, but never 5 s without a byte
        clock.advance(4)
        proto.dataReceived(b"0123456789")
    proto.dataReceived(b")\r\nA0001 OK\r\n")
    assert result_of(d).tagged.kind == "OK" and not transport.disconnecting


def test_drop_mid_response_is_a_retryable_error() -> None:
    proto, _, _ = connected()
    d = proto.command(b"UID FETCH 1 BODY.PEEK[]")
    proto.dataReceived(b"* 1 FETCH (UID 1 BODY[] {100}\r\npartial")
    proto.connectionLost()
    assert isinstance(failure_of(d), MailBackendUnavailable)


def test_bye_then_close_reports_the_server_reason() -> None:
    proto, _, _ = connected()
    d = proto.command(b"NOOP")
    proto.dataReceived(b"* BYE Server shutting down.\r\n")
    proto.connectionLost()
    err = failure_of(d)
    assert isinstance(err, MailBackendUnavailable) and "shutting down" in str(err)


def test_response_for_unknown_tag_aborts() -> None:
    proto, transport, _ = connected()
    proto.command(b"NOOP")
    proto.dataReceived(b"Z999 OK what\r\n")
    assert transport.disconnecting


def test_idle_continuation_and_listener() -> None:
    proto, transport, _ = connected(timeout=5.0)
    events: list[str] = []
    started: list[bool] = []
    proto.listener = lambda r: events.append(r.kind)
    d = proto.command(b"IDLE", timeout=None, on_continuation=lambda r: started.append(True))
    proto.dataReceived(b"+ idling\r\n* 4 EXISTS\r\n* VANISHED 3\r\n")
    assert started == [True] and events == ["EXISTS", "VANISHED"]
    proto.send_raw(b"DONE")
    assert transport.value().endswith(b"DONE\r\n")
    proto.dataReceived(b"A0001 OK Idle completed\r\n")
    assert result_of(d).tagged.kind == "OK"


def _login(server: ScriptedImapServer, password: str) -> defer.Deferred[ImapProtocol]:
    clock = Clock()
    wires: list[Wire] = []

    async def connector() -> ImapProtocol:
        wire = Wire(server, clock, 5.0)
        wires.append(wire)
        return wire.proto

    settings_ = ImapSettings(host="imap.test", starttls=False)
    d = defer.ensureDeferred(open_session(connector, settings_, "alice@example.org", password))
    while wires and wires[0].pump():
        pass
    return d


def test_login_password_never_logged() -> None:
    server = ScriptedImapServer(login_script())
    with levels.override({"IMAP.COMMAND": DEBUG}), capturedLogs() as events:
        d = _login(server, "s3cr3t-Pa55")
    assert d.called and not server.errors
    text = "\n".join(formatEvent(e) for e in events)
    assert 'LOGIN "alice@example.org" ********' in text
    assert "S: A0001 OK" in text  # the conversation itself is logged
    assert "s3cr3t-Pa55" not in text


def test_non_ascii_password_goes_as_literal_and_is_not_logged() -> None:
    server = ScriptedImapServer([(r'LOGIN "alice@example.org" \{7\+?\}', ["{tag} NO nope"])])
    with levels.override({"IMAP.COMMAND": DEBUG}), capturedLogs() as events:
        d = _login(server, "pässwd")
    assert server.literals == ["pässwd".encode()]
    failures: list[BaseException] = []
    d.addErrback(lambda f: failures.append(f.value))
    assert isinstance(failures[0], AuthenticationFailed)
    assert "pässwd" not in "\n".join(formatEvent(e) for e in events)


def test_starttls_required_but_not_offered_is_unavailable_not_auth_failure() -> None:
    clock = Clock()
    server = ScriptedImapServer([("CAPABILITY", ["* CAPABILITY IMAP4rev1", "{tag} OK"])])
    server.greeting = "* OK hello"
    wires: list[Wire] = []

    async def connector() -> ImapProtocol:
        wires.append(Wire(server, clock, 5.0))
        return wires[-1].proto

    d = defer.ensureDeferred(
        open_session(connector, ImapSettings(host="h", starttls=True), "alice", "x")
    )
    while wires and wires[0].pump():
        pass
    failures: list[BaseException] = []
    d.addErrback(lambda f: failures.append(f.value))
    assert isinstance(failures[0], MailBackendUnavailable)
    assert "STARTTLS" in str(failures[0])
    assert "LOGIN" not in " ".join(server.commands)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.", AuthenticationFailed),
        ("{tag} NO [UNAVAILABLE] Temporary authentication failure.", MailBackendUnavailable),
    ],
)
def test_login_refusal_kinds(answer: str, error: type[Exception]) -> None:
    d = _login(ScriptedImapServer([(r"LOGIN .*", [answer])]), "pw")
    failures: list[BaseException] = []
    d.addErrback(lambda f: failures.append(f.value))
    assert isinstance(failures[0], error)


class TLSStringTransport(StringTransport):
    tls_options: object = None

    def startTLS(self, options: object) -> None:
        self.tls_options = options


def test_starttls_before_login_when_activated() -> None:
    clock = Clock()
    server = ScriptedImapServer(
        [
            ("STARTTLS", ["{tag} OK Begin TLS negotiation now"]),
            ("CAPABILITY", ["* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN", "{tag} OK"]),
            *login_script(caps="IMAP4rev1 LITERAL+"),
        ],
        greeting="* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi",
    )
    transport = TLSStringTransport()
    wires: list[Wire] = []
    marker = object()

    async def connector() -> ImapProtocol:
        wires.append(Wire(server, clock, 5.0, transport))
        return wires[-1].proto

    d = defer.ensureDeferred(
        open_session(connector, ImapSettings(host="h", tls_options=marker), "alice", "pw")
    )
    while wires and wires[0].pump():
        pass
    assert d.called and not server.errors
    assert transport.tls_options is marker
    assert [c.split()[0] for c in server.commands] == ["STARTTLS", "CAPABILITY", "LOGIN"]
