"""The IMAP servers the IMAP integration suite runs against: Dovecot and Cyrus (OBM's server).

A `MailServer` hides what differs between the local servers (ports, where the user's folders
live, how a throwaway user is made and removed, how a session is kicked) so one test body runs
against each: ``dovecot``, ``cyrus`` (altnamespace, as harness.md sets it up: folders beside
INBOX) and ``cyrus-inbox`` (the same Cyrus without altnamespace: the user's folders are under
``INBOX/`` and top-level names are not the user's, the layout Opush OP-226 is about).
"""

from __future__ import annotations

import imaplib

import attrs

from tests.support.services import HOST, PASSWORD, LocalServices

SERVERS = ("dovecot", "cyrus", "cyrus-inbox")


@attrs.frozen
class MailServer:
    """One local IMAP + LMTP server, as the `mail_server` fixture hands it out."""

    name: str
    services: LocalServices
    imap_port: int
    lmtp_port: int
    #: Where the user's own folders are: "" or "INBOX/" (NAMESPACE's personal prefix).
    prefix: str = ""
    host: str = HOST

    @classmethod
    def of(cls, name: str, services: LocalServices) -> MailServer:
        if name == "dovecot":
            return cls(name, services, services.imap_port, services.lmtp_port)
        if name == "cyrus":
            return cls(name, services, services.cyrus_imap_port, services.cyrus_lmtp_port)
        if name == "cyrus-inbox":
            port = services.cyrus_inbox_imap_port
            return cls(name, services, port, services.cyrus_lmtp_port, prefix="INBOX/")
        raise ValueError(f"unknown mail server {name!r}; known: {', '.join(SERVERS)}")

    @property
    def service(self) -> str:
        """The local service (fixture) behind this server."""
        return "cyrus" if self.is_cyrus else self.name

    @property
    def is_cyrus(self) -> bool:
        return self.name.startswith("cyrus")

    def folder(self, name: str) -> str:
        """``Sent`` -> the user's ``Sent`` on this server (``INBOX/Sent`` without altnamespace)."""
        return self.prefix + name

    def new_user(self) -> str:
        """A never-used account (password ``secret``) with INBOX + Drafts/Sent/Trash on login."""
        if self.is_cyrus:
            return self.services.cyrus_user()
        return self.services.new_user()

    def remove_user(self, user: str) -> None:
        if self.is_cyrus:
            self.services.cyrus_remove_user(user)
        else:
            self.services.remove_mailbox(user)

    def deliver(self, to: str, subject: str, body: str = "hello\n") -> None:
        """A small text message straight into ``to``'s INBOX over LMTP."""
        message = self.services.message(to, subject, body)
        self.services.deliver(to, message, port=self.lmtp_port)

    def client(self, user: str) -> imaplib.IMAP4:
        """A second, independent blocking IMAP client (another device or webmail)."""
        return self.services.imap(user, PASSWORD, port=self.imap_port)

    def kick(self, user: str) -> None:
        """The server ends every session of ``user`` (as if an admin killed its processes)."""
        if self.is_cyrus:
            self.services.cyrus_kick(user)
        else:
            self.services.kick(user)
