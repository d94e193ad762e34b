"""Console commands on a real embedded store or a fake schema store (no SSH)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from opush.config.sections import Backend, Storage
from opush.console.commands import ConsoleApp
from opush.console.metrics import MetricsHistory
from opush.http.metrics import Metrics
from opush.storage.interfaces import SchemaVersion, WipeState
from opush.storage.startup import REFUSE_DEVICES
from tests.support.console import RecordingTerminal
from tests.support.storage import FakeSchemaStore, embedded_store


def make_app(store: Any, storage: Storage = Storage.EMBEDDED, clock: Any = None) -> ConsoleApp:
    clock = clock or reactor
    metrics = Metrics()
    runtime = SimpleNamespace(
        clock=clock,
        state=store,
        devices=store,
        services={"site": SimpleNamespace(metrics=metrics)},
    )
    config = SimpleNamespace(opush=SimpleNamespace(storage=storage, backend=Backend.STANDALONE))
    return ConsoleApp(runtime, config, MetricsHistory(lambda: metrics, clock))


async def run(app: ConsoleApp, line: str, terminal: RecordingTerminal | None = None) -> str:
    t = terminal or RecordingTerminal()
    await app.execute(line, t)
    return t.text


@pytest_twisted.ensureDeferred
async def test_schema_install_on_missing_cassandra_schema_prints_guide_texts() -> None:
    store = FakeSchemaStore()
    app = make_app(store, Storage.CASSANDRA)
    app.runtime.services[REFUSE_DEVICES] = "Cassandra schema not installed"
    assert await run(app, "schema status") == (
        "WARN: Install required\n"
        'No schema found, you can create it using the "install" command\n'
        "The latest schema version available is 7\n"
    )
    assert await run(app, "schema install") == (
        "Schema version 7 has been installed, please restart opush to get the service up\n"
    )
    status = await run(app, "schema status")
    assert status.startswith("OK\nYour schema is already at the latest version: 7 updated the ")
    # Served at once: the HTTP listener never stopped, only the refusal is lifted.
    assert REFUSE_DEVICES not in app.runtime.services
    assert await run(app, "schema update") == (
        "Nothing to do, your schema is already at the latest version\n"
    )
    assert (await run(app, "schema install")).startswith("The schema is already installed")


@pytest_twisted.ensureDeferred
async def test_schema_update_of_a_too_old_version() -> None:
    when = datetime(2014, 3, 26, 16, 25, 53, tzinfo=UTC)
    store = FakeSchemaStore([SchemaVersion(1, when)])
    app = make_app(store, Storage.CASSANDRA)
    status = await run(app, "schema status")
    assert status.startswith("WARN: Update required\n")  # minimal == latest: required
    assert await run(app, "schema update") == (
        "Your schema has been updated from version 1 to 7, "
        "please restart opush to get the service up\n"
    )


@pytest_twisted.ensureDeferred
async def test_schema_error_is_printed_and_session_goes_on() -> None:
    app = make_app(FakeSchemaStore(broken=True), Storage.CASSANDRA)
    t = RecordingTerminal()
    assert await app.execute("schema status", t) == 0
    assert t.text == "ERROR: All host(s) tried for query failed\n"
    assert await app.execute("schema frobnicate", t) == 1
    assert "ERROR: schema takes one of status, install, update" in t.text
    assert await app.execute("date", t) == 0


@pytest_twisted.ensureDeferred
async def test_devices_list_show_wipe_resync_remove(tmp_path: Path) -> None:
    store = await embedded_store(tmp_path, clock=reactor)  # type: ignore[arg-type]
    try:
        app = make_app(store)
        assert await run(app, "devices list") == "No device\n"
        await store.touch_device(
            "alice@example.org",
            "DEV1",
            device_type="iPhone",
            user_agent="Apple-iPhone/1",
            protocol_version="14.1",
        )
        listing = await run(app, "devices list ALICE@example.org")
        assert "alice@example.org  DEV1    iPhone  14.1" in listing
        assert listing.endswith("1 device\n")
        shown = await run(app, "devices show alice@example.org DEV1")
        assert "user agent:      Apple-iPhone/1" in shown

        t = RecordingTerminal(admin="root@example.org")
        await app.execute("devices wipe alice@example.org DEV1", t)
        assert t.text == (
            "Remote wipe requested for device DEV1 of alice@example.org: sent at its next request\n"
        )
        device = await store.get_device("alice@example.org", "DEV1")
        assert device is not None and device.wipe is WipeState.WIPE_PENDING
        assert device.wipe_requested_by == "root@example.org"
        await run(app, "devices cancel-wipe alice@example.org DEV1")
        device = await store.get_device("alice@example.org", "DEV1")
        assert device is not None and device.wipe is WipeState.NONE
        await run(app, "devices account-wipe alice@example.org DEV1")
        device = await store.get_device("alice@example.org", "DEV1")
        assert device is not None and device.wipe is WipeState.ACCOUNT_ONLY_WIPE_PENDING

        assert "dropped" in await run(app, "devices resync alice@example.org DEV1")
        assert await run(app, "devices remove alice@example.org DEV1") == (
            "Device DEV1 of alice@example.org removed\n"
        )
        assert await run(app, "devices show alice@example.org DEV1") == (
            "ERROR: no device 'DEV1' registered for 'alice@example.org'\n"
        )
        assert (await run(app, "devices wipe alice@example.org DEV1")).startswith("ERROR: ")
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_help_is_built_from_docstrings_and_h_switch() -> None:
    app = make_app(FakeSchemaStore(), Storage.CASSANDRA)
    text = await run(app, "help")
    for name in ("schema", "devices", "dashboard", "system", "runtime", "date"):
        assert f"\n  {name}" in text
    assert (await run(app, "schema -h")).startswith(
        "Show, install or update the state store's schema.\n\nusage: schema status|install|update"
    )
    assert await run(app, "nope") == "ERROR: unknown command 'nope', type help\n"
    assert "Python:" in await run(app, "jvm")


def test_dashboard_refreshes_every_second_until_q() -> None:
    clock = Clock()
    clock.advance(1_700_000_000)
    app = make_app(FakeSchemaStore(), Storage.CASSANDRA, clock=clock)
    app.runtime.devices = SimpleNamespace(list_devices=lambda user=None: _succeed([]))
    metrics = app.runtime.services["site"].metrics
    app.history.start()
    t = RecordingTerminal(interactive=True)
    d = ensureDeferred(app.execute("dashboard", t))
    assert len(t.output) == 1 and "(no request yet)" in t.text
    for _ in range(3):
        metrics.observe("Sync", 200, 0.040)
    metrics.observe("Ping", 500, 0.010)
    clock.advance(1)
    assert len(t.output) == 2
    frame = t.output[-1]
    assert frame.startswith("\x1b[H\x1b[2Jopush dashboard")
    assert any(line.split()[:4] == ["Sync", "3.0", "3", "3"] for line in frame.splitlines())
    assert "1 server errors (5xx) in the last minute" in frame
    t.press("x")  # other keys are ignored
    clock.advance(1)
    assert len(t.output) == 3
    t.press("q")
    assert d.called and d.result == 0
    clock.advance(5)
    assert len(t.output) == 3
    app.history.stop()


def test_dashboard_without_terminal_prints_one_frame() -> None:
    clock = Clock()
    app = make_app(FakeSchemaStore(), Storage.CASSANDRA, clock=clock)
    app.runtime.devices = SimpleNamespace(list_devices=lambda user=None: _succeed([]))
    app.history.breakdown.add("REQUEST:30 (IMAP:20 (SQL:5), OTHER:5)")
    t = RecordingTerminal()
    d = ensureDeferred(app.execute("dashboard", t))
    assert d.called and len(t.output) == 1
    assert "IMAP" in t.text and "SQL" in t.text


def _succeed(value: Any) -> Any:
    from twisted.internet.defer import succeed

    return succeed(value)
