"""Ping for DAV collections: the poller turns changed sync tokens into hints (fake clock)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.testing import Clock

from opush.backends.dav import DavPoller
from opush.backends.dav.client import Collection
from opush.push.hub import Hint
from opush.storage.interfaces import FolderKind


class FakeClient:
    def __init__(self) -> None:
        self.tokens = {"/u/contacts/": "t1", "/u/work/": "w1"}
        self.fail = False

    async def collections(self) -> list[Collection]:
        if self.fail:
            raise RuntimeError("down")
        return [Collection(h, h, "addressbook", sync_token=t) for h, t in self.tokens.items()]


class FakeHub:
    def __init__(self) -> None:
        self.clock = Clock()
        self.settings = type("S", (), {"poll_interval": 30.0})()

    def jittered(self, seconds: float) -> float:
        return seconds

    async def limited(self, work: Any) -> Any:
        return await work()


def test_changed_tokens_become_hints_and_a_failure_is_reported() -> None:
    client, hub = FakeClient(), FakeHub()
    hints: list[Hint] = []
    lost: list[bool] = []
    poller = DavPoller(
        FolderKind.CONTACTS,
        client,  # type: ignore[arg-type]
        hub,
        frozenset({"/u/contacts/"}),
        hints.append,
        lambda: lost.append(True),
    )
    ensureDeferred(poller.start())
    assert hints == [Hint(FolderKind.CONTACTS, resync=True)]
    hub.clock.advance(30)
    assert len(hints) == 1  # nothing changed
    client.tokens["/u/contacts/"] = "t2"
    hub.clock.advance(30)
    assert hints[-1] == Hint(FolderKind.CONTACTS, folders=frozenset({"/u/contacts/"}))
    client.tokens["/u/new/"] = "n1"
    hub.clock.advance(30)
    assert hints[-1].hierarchy
    client.fail = True
    hub.clock.advance(30)
    assert lost == [True]
    ensureDeferred(poller.stop())
