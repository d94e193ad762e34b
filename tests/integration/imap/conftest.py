"""The IMAP suite runs against Dovecot and Cyrus: every test asking for `mail_server` (directly
or through `fresh_user`/`deliver`) runs once per server, ids ``[dovecot]``, ``[cyrus]`` and
``[cyrus-inbox]`` (Cyrus without altnamespace; see tests/support/mailservers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.mailservers import SERVERS, MailServer
from tests.support.services import LocalServices


@pytest.fixture(params=SERVERS)
def mail_server(request: pytest.FixtureRequest) -> MailServer:
    """Dovecot (127.0.0.1:1143) or Cyrus (127.0.0.1:1144, 1146), started once per session."""
    name: str = request.param
    services: LocalServices = request.getfixturevalue("cyrus" if name.startswith("cyrus") else name)
    return MailServer.of(name, services)


@pytest.fixture
def fresh_user(mail_server: MailServer) -> Iterator[str]:
    """A brand-new account on this test's server; removed afterwards."""
    user = mail_server.new_user()
    yield user
    mail_server.remove_user(user)


@pytest.fixture
def deliver(mail_server: MailServer) -> Callable[..., None]:
    """deliver(to, subject, body="hello"): straight into the server over LMTP."""
    return mail_server.deliver
