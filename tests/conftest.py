"""Root fixtures: the local services (tests/support/services.py), started on demand.

Ask for the narrowest fixture: ``dovecot`` starts Dovecot only, ``postfix`` Dovecot and Postfix,
``slapd``, ``postgres``, ``radicale``, ``cyrus`` one each; ``local_services`` all of them but
Cyrus (optional, used by the IMAP suite).  Each returns the same `LocalServices` (ports, users,
helpers).  Services already running are reused; at the end of the session the ones a fixture
started are stopped, unless another test session still uses them or ``OPUSH_KEEP_SERVICES=1``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.services import (
    PASSWORD,
    LocalServices,
    ServiceControl,
    ServicesLease,
    cyrus_installed,
    new_address,
)


@pytest.fixture(scope="session")
def services_lease() -> Iterator[ServicesLease]:
    lease = ServicesLease()
    yield lease
    lease.release()


@pytest.fixture(scope="session")
def dovecot(services_lease: ServicesLease) -> LocalServices:
    """Dovecot: IMAP 127.0.0.1:1143, LMTP 127.0.0.1:2424."""
    return services_lease.ensure("dovecot")


@pytest.fixture(scope="session")
def postfix(services_lease: ServicesLease, dovecot: LocalServices) -> LocalServices:
    """Postfix SMTP 127.0.0.1:2525, delivering to Dovecot over LMTP."""
    return services_lease.ensure("postfix")


@pytest.fixture(scope="session")
def slapd(services_lease: ServicesLease) -> LocalServices:
    """OpenLDAP on ldap://127.0.0.1:3389/, dc=example,dc=org."""
    return services_lease.ensure("ldap")


@pytest.fixture(scope="session")
def postgres(services_lease: ServicesLease) -> LocalServices:
    """PostgreSQL on 127.0.0.1:5433, superuser postgres, trust auth."""
    return services_lease.ensure("postgres")


@pytest.fixture(scope="session")
def radicale(services_lease: ServicesLease) -> LocalServices:
    """Radicale CalDAV/CardDAV on http://127.0.0.1:5232/."""
    return services_lease.ensure("radicale")


@pytest.fixture(scope="session")
def cyrus(services_lease: ServicesLease) -> LocalServices:
    """Cyrus IMAP (OBM's server): IMAP 127.0.0.1:1144, LMTP 127.0.0.1:2425; users by
    ``cyrus.cyrus_user()``.  Skips when scripts/install-cyrus has not unpacked it."""
    if not cyrus_installed():
        pytest.skip("Cyrus IMAP is not installed (scripts/bootstrap runs scripts/install-cyrus)")
    return services_lease.ensure("cyrus")


@pytest.fixture(scope="session")
def local_services(
    dovecot: LocalServices,
    postfix: LocalServices,
    slapd: LocalServices,
    postgres: LocalServices,
    radicale: LocalServices,
) -> LocalServices:
    """Every local service up."""
    return dovecot


@pytest.fixture
def fresh_user(dovecot: LocalServices) -> Iterator[str]:
    """A brand-new IMAP account (``fresh-...@example.org``, password ``secret``): empty INBOX
    plus Sent/Drafts/Trash, nobody else touches it.  Its mailbox is deleted afterwards."""
    user = new_address()
    yield user
    dovecot.remove_mailbox(user)


@pytest.fixture
def fresh_dav_user(radicale: LocalServices) -> str:
    """A brand-new Radicale account (password ``secret``) with no collections yet."""
    user = new_address("dav")
    radicale.add_dav_user(user, PASSWORD)
    return user


@pytest.fixture
def fresh_pg_database(postgres: LocalServices) -> Iterator[dict[str, Any]]:
    """A new, empty PostgreSQL database; yields ``psycopg2.connect`` keyword arguments."""
    import psycopg2

    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = psycopg2.connect(**postgres.pg_connect_params)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield {**postgres.pg_connect_params, "dbname": name}
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@pytest.fixture
def service_control(services_lease: ServicesLease) -> Iterator[ServiceControl]:
    """Stop, kill, restart services in a test; whatever it stopped runs again afterwards.

    The services are shared with any other test session on the machine: keep outages short.
    """
    control = ServiceControl(services_lease.services)
    yield control
    control.restore()


@pytest.fixture
def stop_service(service_control: ServiceControl) -> Callable[[str], None]:
    """``stop_service("postfix")``: stopped now, started again after the test."""
    return service_control.stop
