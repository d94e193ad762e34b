"""obm-locator client: first line of the answer, cached, errors are retryable."""

from __future__ import annotations

import pytest

from opush.backends.interfaces import BackendUnavailable
from opush.backends.obmsync import IMAP_FRONTEND, OBM_SYNC, SMTP_OUT, Locator, LocatorError
from opush.backends.obmsync.hosts import MailHosts
from opush.backends.obmsync.locator import obm_sync_services_url
from opush.backends.obmsync.transport import TransportError
from tests.doubles.obmsync import ObmSyncDouble
from tests.support.obmsync import run
from tests.support.storage import fake_clock


def setup(cache_seconds: float = 1800.0) -> tuple[ObmSyncDouble, Locator, object]:
    clock = fake_clock()
    double = ObmSyncDouble(clock)
    locator = Locator(double.transport(), clock, "obm.example.org", cache_seconds=cache_seconds)
    return double, locator, clock


def test_url_and_first_line() -> None:
    double, locator, _ = setup()
    double.locations[OBM_SYNC] = ["10.0.0.7", "10.0.0.8"]
    assert run(locator.locate(*OBM_SYNC, "alice@example.org")) == "10.0.0.7"
    assert locator.base_url == "http://obm.example.org:8084/obm-locator/location/host"
    assert double.locator_paths == ["/obm-locator/location/host/sync/obm_sync/alice@example.org"]
    assert obm_sync_services_url("10.0.0.7") == "http://10.0.0.7:8080/obm-sync/services"


def test_answers_are_cached_until_the_timeout() -> None:
    double, locator, clock = setup(cache_seconds=60)
    run(locator.locate(*IMAP_FRONTEND, "alice@example.org"))
    run(locator.locate(*IMAP_FRONTEND, "ALICE@example.org"))
    assert len(double.locator_paths) == 1
    run(locator.locate(*SMTP_OUT, "alice@example.org"))  # another service: asked
    assert len(double.locator_paths) == 2
    clock.advance(61)  # type: ignore[attr-defined]
    assert locator.cached(*IMAP_FRONTEND, "alice@example.org") is None
    run(locator.locate(*IMAP_FRONTEND, "alice@example.org"))
    assert len(double.locator_paths) == 3


def test_unknown_service_and_unreachable_locator() -> None:
    double, locator, _ = setup()
    with pytest.raises(LocatorError, match="knows no"):
        run(locator.locate("nothing", "here", "alice@example.org"))
    transport = double.transport()
    transport.failure = TransportError("no answer within 5 s")
    down = Locator(transport, fake_clock(), "obm.example.org")
    with pytest.raises(BackendUnavailable):
        run(down.locate(*OBM_SYNC, "alice@example.org"))


def test_static_hosts_override_the_locator() -> None:
    double, locator, _ = setup()
    double.locations[IMAP_FRONTEND] = ["10.1.1.1"]
    hosts = MailHosts(locator, imap_host=None, imap_port=143, smtp_host="smtp.local", smtp_port=25)
    assert run(hosts.imap("alice@example.org")) == ("10.1.1.1", 143)
    assert run(hosts.smtp("alice@example.org")) == ("smtp.local", 25)
    assert double.locator_paths == [
        "/obm-locator/location/host/mail/imap_frontend/alice@example.org"
    ]


class _FakeImap:
    def __init__(self, host: str) -> None:
        self.host = host
        self.stores: list[str] = []

    def store(self, credentials: object) -> object:
        backend = self

        class Store:
            async def list_folders(self) -> list[str]:
                return [f"INBOX@{backend.host}"]

        return Store()

    async def shutdown(self) -> None:
        self.stores.append("shutdown")


def test_mail_backend_finds_the_imap_server_per_user() -> None:
    from opush.backends.obmsync.hosts import LocatedMailBackend
    from tests.support.obmsync import credentials

    double, locator, _ = setup()
    double.locations[IMAP_FRONTEND] = ["10.2.2.2"]
    made: list[_FakeImap] = []

    def make(host: str) -> _FakeImap:
        made.append(_FakeImap(host))
        return made[-1]

    hosts = MailHosts(locator, imap_host=None, imap_port=143, smtp_host=None, smtp_port=25)
    mail = LocatedMailBackend(hosts, make)
    alice = credentials("alice@example.org")
    # Not located yet: the store resolves the host on its first call.
    assert run(mail.store(alice).list_folders()) == ["INBOX@10.2.2.2"]
    # Cached now: the same backend (pool) serves the next store directly.
    assert run(mail.store(alice).list_folders()) == ["INBOX@10.2.2.2"]
    assert [b.host for b in made] == ["10.2.2.2"]
    assert len(double.locator_paths) == 1
    run(mail.shutdown())
    assert made[0].stores == ["shutdown"]
