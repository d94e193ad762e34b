"""The Sync and GetItemEstimate handlers over the doubles: request parsing, statuses, Wait
limits, the retryable status when IMAP drops, SUMMARY.IN/OUT and BREAKDOWN lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from opush.backends.interfaces import Credentials, UserIdentity
from opush.commands import getitemestimate, sync
from opush.commands.context import CommandContext, CommandResult
from opush.http.errors import EasStatusError
from opush.http.query import EasQuery
from opush.log import INFO, levels
from opush.runtime import Runtime
from opush.storage.interfaces import Device
from opush.wbxml import E, ns
from tests.support.sync import EasDevice, read_prop
from tests.support.syncfakes import FakeMailStore, MemoryStateStore, text_message
from tests.unit.sync.conftest import run

A = ns.AIRSYNC
G = ns.GETITEMESTIMATE
USER = "alice@example.org"


class FakeBackend:
    def __init__(self, store: FakeMailStore) -> None:
        self.mail = store

    def store(self, credentials: Any) -> FakeMailStore:
        return self.mail

    async def shutdown(self) -> None:
        return None


def context(
    state: MemoryStateStore, mail: FakeMailStore, version: tuple[int, int] = (14, 1)
) -> CommandContext:
    now = datetime(2026, 9, 21, tzinfo=UTC)
    clock = Clock()
    clock.advance(now.timestamp())
    runtime = Runtime(
        clock=clock,
        auth=None,  # type: ignore[arg-type]
        devices=None,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        mail=FakeBackend(mail),  # type: ignore[arg-type]
    )
    user = UserIdentity("alice", "example.org", USER)
    return CommandContext(
        runtime=runtime,
        command="Sync",
        credentials=Credentials(user, "secret"),
        device=Device(USER, "DEV1", "test", None, now, now),
        version=version,
        query=EasQuery("Sync", "DEV1", "test", params={}),
        headers={},
        body=b"",
        content_type=None,
        policy_key=None,
        request_id=1,
    )


def request(collection_id: Any, key: str, **kw: Any) -> etree._Element:
    dev = EasDevice.__new__(EasDevice)
    dev.version = "14.1"
    return dev.sync_request(collection_id, key, **kw)


def collection(result: CommandResult) -> etree._Element:
    assert result.tree is not None
    found = result.tree.find(f"{{{A}}}Collections/{{{A}}}Collection")
    assert found is not None
    return found


def text(el: etree._Element, tag: str, namespace: str = A) -> str | None:
    return el.findtext(f"{{{namespace}}}{tag}")


@pytest.fixture
def setup() -> tuple[MemoryStateStore, FakeMailStore]:
    state = MemoryStateStore()
    state.add_collection(USER, "DEV1", 1, "INBOX", 2)
    mail = FakeMailStore()
    for i in range(3):
        mail.deliver("INBOX", text_message(f"m{i}"))
    return state, mail


def test_sync_flow_and_log_lines(setup: tuple[MemoryStateStore, FakeMailStore]) -> None:
    state, mail = setup
    ctx = context(state, mail)
    with levels.override({"SUMMARY.IN": INFO, "SUMMARY.OUT": INFO, "BREAKDOWN": INFO}):
        with capturedLogs() as events:
            first = run(sync.handle(ctx, request(1, "0")))
            key = text(collection(first), "SyncKey") or ""
            second = run(sync.handle(ctx, request(1, key, window=2)))
            col = collection(second)
            assert col.find(f"{{{A}}}MoreAvailable") is not None
            key = text(col, "SyncKey") or ""
            cmd = E(
                A,
                "Change",
                E(A, "ServerId", text="1:3"),
                E(A, "ApplicationData", read_prop(True)),
            )
            third = run(sync.handle(ctx, request(1, key, commands=[cmd])))
            assert text(collection(third), "Status") == "1"
    lines = [(e["log_namespace"], e["log_format"].format(**e)) for e in events]
    summaries = [t for ns_, t in lines if ns_ in ("SUMMARY.IN", "SUMMARY.OUT")]
    assert summaries[-2:] == ["CHANGE: 1, DELETE: 0, FETCH: 0", "CHANGE: 1, DELETE: 0, FETCH: 0"]
    assert summaries[2:4] == ["CHANGE: 0, DELETE: 0, FETCH: 0", "CHANGE: 2, DELETE: 0, FETCH: 0"]
    breakdowns = [t for ns_, t in lines if ns_ == "BREAKDOWN"]
    assert len(breakdowns) == 3 and all(b.startswith("REQUEST:") for b in breakdowns)


def test_unknown_and_malformed_collections(setup: tuple[MemoryStateStore, FakeMailStore]) -> None:
    state, mail = setup
    ctx = context(state, mail)
    assert text(collection(run(sync.handle(ctx, request(42, "0")))), "Status") == "12"
    assert text(collection(run(sync.handle(ctx, request("x", "0")))), "Status") == "4"


def test_empty_partial_and_wait_limits(setup: tuple[MemoryStateStore, FakeMailStore]) -> None:
    state, mail = setup
    ctx = context(state, mail)
    with pytest.raises(EasStatusError) as err:
        run(sync.handle(ctx, None))
    assert err.value.status == 13
    tree = request(1, "0")
    tree.append(E(A, "Wait", text=90))
    result = run(sync.handle(ctx, tree))
    assert result.tree is not None
    assert text(result.tree, "Status") == "14" and text(result.tree, "Limit") == "59"
    tree = request(1, "0")
    tree.append(E(A, "HeartbeatInterval", text=10))
    result = run(sync.handle(ctx, tree))
    assert result.tree is not None and text(result.tree, "Limit") == "60"
    tree = request(1, "0")
    tree.append(E(A, "Wait", text=5))
    tree.append(E(A, "HeartbeatInterval", text=300))
    with pytest.raises(EasStatusError) as err:
        run(sync.handle(ctx, tree))
    assert err.value.status == 4  # MS-ASCMD 2.2.3.198: both elements is a protocol error


def test_wait_with_nothing_new_is_an_empty_answer(
    setup: tuple[MemoryStateStore, FakeMailStore],
) -> None:
    state, mail = setup
    ctx = context(state, mail)
    key = text(collection(run(sync.handle(ctx, request(1, "0")))), "SyncKey") or ""
    key = text(collection(run(sync.handle(ctx, request(1, key)))), "SyncKey") or ""
    waited: list[Any] = []

    async def waiter(c: Any, ids: list[int], seconds: int) -> bool:
        waited.append((ids, seconds))
        return False

    ctx.runtime.services["sync_wait"] = waiter
    tree = request(1, key)
    tree.append(E(A, "Wait", text=5))
    result = run(sync.handle(ctx, tree))
    assert result.tree is None and result.raw is None
    assert waited == [([1], 300)]
    mail.deliver("INBOX", text_message("new"))
    result = run(sync.handle(ctx, tree))  # something new: answered at once
    assert len(collection(result).findall(f"{{{A}}}Commands/{{{A}}}Add")) == 1


def test_imap_drop_is_status_16_and_nothing_advances(
    setup: tuple[MemoryStateStore, FakeMailStore],
) -> None:
    state, mail = setup
    ctx = context(state, mail)
    key = text(collection(run(sync.handle(ctx, request(1, "0")))), "SyncKey") or ""
    puts = state.puts
    mail.fail_next = 1
    with pytest.raises(EasStatusError) as err:
        run(sync.handle(ctx, request(1, key)))
    assert err.value.status == 16
    assert state.puts == puts
    result = run(sync.handle(ctx, request(1, key)))
    assert len(collection(result).findall(f"{{{A}}}Commands/{{{A}}}Add")) == 3


def test_get_item_estimate_statuses(setup: tuple[MemoryStateStore, FakeMailStore]) -> None:
    state, mail = setup
    ctx = context(state, mail)

    def estimate(cid: Any, key: str) -> tuple[str | None, str | None]:
        tree = E(
            G,
            "GetItemEstimate",
            E(
                G,
                "Collections",
                E(G, "Collection", E(A, "SyncKey", text=key), E(G, "CollectionId", text=cid)),
            ),
        )
        result = run(getitemestimate.handle(ctx, tree))
        assert result.tree is not None
        resp = result.tree.find(f"{{{G}}}Response")
        assert resp is not None
        return text(resp, "Status", G), resp.findtext(f".//{{{G}}}Estimate")

    assert estimate(1, "0") == ("3", None)
    key = text(collection(run(sync.handle(ctx, request(1, "0")))), "SyncKey") or ""
    assert estimate(1, key) == ("1", "3")
    assert estimate(1, "old") == ("4", None)
    assert estimate(9, key) == ("2", None)
