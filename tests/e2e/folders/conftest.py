"""One `twistd -n opush` (demo standalone configuration: Dovecot, embedded store) for the
folder end-to-end tests; each test uses its own fresh IMAP account and device id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import OpushServer, start_server
from tests.support.services import LocalServices


@pytest.fixture(scope="module")
def opush_server(
    tmp_path_factory: pytest.TempPathFactory, dovecot: LocalServices
) -> Iterator[OpushServer]:
    server = start_server(tmp_path_factory.mktemp("folders-e2e"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_log(opush_server: OpushServer) -> Iterator[None]:
    """Shows the server's log when a test fails (pytest prints captured output)."""
    yield
    print(opush_server.log_text()[-6000:])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
