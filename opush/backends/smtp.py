# mypy: disallow-untyped-calls=False
"""Outgoing mail over SMTP (`twisted.mail.smtp` ESMTP client) for SendMail, SmartReply,
SmartForward and MeetingResponse.

Wiring (profiles)::

    smtp = SmtpClient(reactor, SmtpSettings(host=config.mail.smtp_host, port=config.mail.smtp_port))
    await smtp.send(mail_from, recipients, data, credentials=creds)

The obm profile passes ``locate`` (obm-locator ``mail/smtp_out``, ``MailHosts.smtp``) instead of
a fixed host.  STARTTLS and AUTH are optional (``starttls``; ``auth`` = "none", "user": the
device user's own login and password, or "fixed": ``username``/``password``).

One transaction per message, all or nothing: if the server refuses any recipient the DATA is
not sent (the device is told, instead of a mail that silently reached only some recipients).
Failures are typed for ``opush.http.errors``: `SmtpUnavailable` (a `BackendUnavailable`: the
server is down, timed out, or answered 4xx: retry later) and `SmtpRefused` (5xx: retrying the
same message will not help).  Passwords never reach a log: the session transcript kept for
errors has AUTH lines removed.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import attrs
from twisted.internet import error as net_error
from twisted.internet.defer import Deferred
from twisted.mail import smtp

from opush.backends.interfaces import BackendError, BackendUnavailable, Credentials
from opush.log import logger

log = logger("opush.backends.smtp")


class SmtpUnavailable(BackendUnavailable):
    """The SMTP server could not be reached, timed out, or answered a transient (4xx) error:
    nothing was sent; the device may retry."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SmtpRefused(BackendError):
    """The SMTP server refused the message permanently (5xx: a recipient, the sender, the
    size, the authentication); nothing was sent."""

    def __init__(
        self, message: str, *, code: int, refused: Sequence[tuple[str, int, str]] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        #: (address, code, text) of each refused recipient.
        self.refused = tuple(refused)


AUTH_MODES = ("none", "user", "fixed")


@attrs.frozen
class SmtpSettings:
    """Where and how to submit mail (mail_conf.ini ``smtp.*``)."""

    host: str = "localhost"
    port: int = 25
    #: Require STARTTLS (the send fails if the server does not offer it).
    starttls: bool = False
    #: "none", "user" (the device user's credentials) or "fixed" (username/password below).
    auth: str = "none"
    #: With auth "user": log in as ``user@domain`` (else the bare login), like IMAP.
    login_with_domain: bool = True
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    #: Seconds to connect, and to wait for each server answer.
    timeout: float = 30.0
    #: EHLO name; default: the local host name.
    helo: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.auth not in AUTH_MODES:
            raise ValueError(f"smtp auth must be one of {AUTH_MODES}, not {self.auth!r}")


@attrs.frozen
class SendResult:
    """What the server said when it accepted the message."""

    host: str
    port: int
    recipients: tuple[str, ...]
    response: str


class _Sender(smtp.ESMTPSender):
    """ESMTPSender that sends DATA only when every recipient was accepted."""

    def smtpState_toOrData(self, code: int, resp: bytes) -> Any:
        if self.lastAddress is not None and code not in smtp.SUCCESS:
            self.toAddressesResult.append((self.lastAddress, code, resp))
            self.sendError(
                smtp.SMTPDeliveryError(
                    code,
                    b"recipient refused: " + self.lastAddress + b": " + resp,
                    self.log.str(),
                    self.toAddressesResult,
                )
            )
            return None
        return super().smtpState_toOrData(code, resp)


class _SenderFactory(smtp.ESMTPSenderFactory):
    protocol = _Sender
    #: The reactor whose clock times out silent servers (a Clock in tests).
    clock: Any = None

    def buildProtocol(self, addr: Any) -> Any:
        p = super().buildProtocol(addr)
        if self.clock is not None:
            p.callLater = self.clock.callLater
        return p


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _transcript(log_text: bytes | str | None) -> str:
    """The SMTP session log without anything that may carry credentials (AUTH exchanges)."""
    lines = _text(log_text).splitlines()
    kept: list[str] = []
    in_auth = False
    for line in lines:
        body = line[4:] if line.startswith((">>> ", "<<< ")) else line
        if line.startswith(">>> ") and body.upper().startswith("AUTH"):
            in_auth = True
            kept.append(">>> AUTH ********")
            continue
        if in_auth:
            if line.startswith("<<< ") and not body.startswith("334"):
                in_auth = False
                kept.append(line)
            continue
        kept.append(line)
    return "\n".join(kept)


def classify_failure(exc: BaseException, where: str) -> Exception:
    """A twisted.mail / connection failure as SmtpUnavailable or SmtpRefused."""
    if isinstance(exc, SmtpUnavailable | SmtpRefused):
        return exc
    if isinstance(exc, smtp.SMTPClientError):
        code = int(exc.code) if isinstance(exc.code, int) else -1
        text = _text(exc.resp).strip()
        message = f"{where}: {code} {text}" if code > 0 else f"{where}: {text}"
        if 500 <= code < 600:
            refused = [
                (_text(addr), int(c), _text(r))
                for addr, c, r in cast(Any, exc.addresses or ())
                if isinstance(c, int) and c not in smtp.SUCCESS
            ]
            return SmtpRefused(message, code=code, refused=refused)
        if isinstance(exc, smtp.SMTPTimeoutError):
            return SmtpUnavailable(f"{where}: no answer in time", code=None)
        return SmtpUnavailable(message, code=code if code > 0 else None)
    if isinstance(exc, net_error.ConnectError | net_error.ConnectionLost | net_error.TimeoutError):
        return SmtpUnavailable(f"{where}: {exc}")
    if isinstance(exc, net_error.ConnectionDone):
        return SmtpUnavailable(f"{where}: the server closed the connection")
    return SmtpUnavailable(f"{where}: {type(exc).__name__}: {exc}")


Locate = Callable[[str], Awaitable[tuple[str, int]]]


class SmtpClient:
    """Sends one message per call over a fresh ESMTP connection."""

    def __init__(
        self,
        reactor: Any,
        settings: SmtpSettings,
        *,
        locate: Locate | None = None,
        context_factory: Any = None,
    ) -> None:
        self.reactor = reactor
        self.settings = settings
        self._locate = locate
        self._context_factory = context_factory

    async def server_for(self, credentials: Credentials | None) -> tuple[str, int]:
        if self._locate is not None and credentials is not None:
            return await self._locate(credentials.user.login_at_domain)
        return self.settings.host, self.settings.port

    def _auth(self, credentials: Credentials | None) -> tuple[bytes | None, bytes | None]:
        s = self.settings
        if s.auth == "fixed" and s.username:
            return s.username.encode("utf-8"), (s.password or "").encode("utf-8")
        if s.auth == "user" and credentials is not None:
            user = credentials.user
            login = user.login_at_domain if s.login_with_domain else user.login
            return login.encode("utf-8"), credentials.password.encode("utf-8")
        return None, None

    def _tls(self, host: str) -> Any:
        if not self.settings.starttls:
            return None
        if self._context_factory is not None:
            return self._context_factory
        from twisted.internet.ssl import optionsForClientTLS

        return optionsForClientTLS(host)

    async def send(
        self,
        mail_from: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        credentials: Credentials | None = None,
    ) -> SendResult:
        """Submit ``data`` (CRLF or LF lines) from ``mail_from`` to ``recipients``.

        Raises SmtpUnavailable (retry later) or SmtpRefused (permanent); ValueError without
        recipients."""
        if not recipients:
            raise ValueError("no recipients")
        host, port = await self.server_for(credentials)
        where = f"SMTP {host}:{port}"
        username, password = self._auth(credentials)
        done: Deferred[Any] = Deferred()
        # twisted's client turns "\n" into CRLF itself and dot-stuffs.
        body = io.BytesIO(data.replace(b"\r\n", b"\n"))
        factory = _SenderFactory(
            username,
            password,
            mail_from,
            list(recipients),
            body,
            done,
            retries=0,
            timeout=self.settings.timeout,
            contextFactory=self._tls(host),
            heloFallback=not (self.settings.starttls or username),
            requireAuthentication=username is not None,
            requireTransportSecurity=self.settings.starttls,
            # Without a context factory and a hostname twisted would try STARTTLS whenever
            # offered; only mail_conf.ini decides.
            hostname=host if self.settings.starttls else None,
        )
        factory.clock = self.reactor
        if self.settings.helo:
            factory.domain = self.settings.helo.encode("ascii")
        self.reactor.connectTCP(host, port, factory, timeout=self.settings.timeout)
        try:
            result = await done
        except Exception as e:
            failure = classify_failure(e, where)
            transcript = _transcript(getattr(e, "log", None))
            # The request's own failure line (opush/http/errors.py) says what the device got;
            # a refusal also gets the SMTP dialogue, without AUTH, for the administrator.
            emit = log.warn if isinstance(failure, SmtpRefused) else log.debug
            emit(
                "{error}; from {sender} to {recipients}{transcript}",
                error=str(failure),
                sender=mail_from,
                recipients=", ".join(recipients),
                transcript=f"\n{transcript}" if transcript else "",
            )
            raise failure from e
        _num_ok, addresses = result
        accepted = tuple(_text(a) for a, c, _r in addresses if c in smtp.SUCCESS)
        log.info(
            "{where}: sent {size} bytes from {sender} to {count} recipient(s)",
            where=where,
            size=len(data),
            sender=mail_from,
            count=len(accepted),
        )
        return SendResult(host, port, accepted, "")


def settings_from_config(config: Any) -> SmtpSettings:
    """mail_conf.ini's SMTP keys (duck-typed `MailSection`): smtp.host, smtp.port, and when
    the configuration knows them smtp.activateTLS, smtp.auth, smtp.login, smtp.password,
    smtp.timeoutInMs."""
    mail = getattr(config, "mail", config)
    timeout_ms = getattr(mail, "smtp_timeout_in_ms", None)
    auth = getattr(mail, "smtp_auth", None)
    auth_text = str(getattr(auth, "value", auth) or "none").lower()
    return SmtpSettings(
        host=getattr(mail, "smtp_host", None) or "localhost",
        port=int(getattr(mail, "smtp_port", 25) or 25),
        starttls=bool(getattr(mail, "smtp_activate_tls", False)),
        auth=auth_text if auth_text in AUTH_MODES else "none",
        login_with_domain=bool(getattr(mail, "imap_login_with_domain", True)),
        username=getattr(mail, "smtp_login", None),
        password=getattr(mail, "smtp_password", None),
        timeout=(timeout_ms / 1000.0) if isinstance(timeout_ms, int) and timeout_ms > 0 else 30.0,
    )
