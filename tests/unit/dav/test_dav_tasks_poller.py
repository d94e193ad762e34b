"""Ping for task lists: the DAV poller of FolderKind.TASKS watches only the calendars that
hold VTODOs (fake clock)."""

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
        self.collections_ = {
            "/u/tasks/": ("VTODO",),
            "/u/calendar/": ("VEVENT",),
            "/u/both/": ("VEVENT", "VTODO"),
            "/u/contacts/": (),
        }
        self.tokens = dict.fromkeys(self.collections_, "1")

    async def collections(self) -> list[Collection]:
        return [
            Collection(h, h, "addressbook" if "contacts" in h else "calendar", c, self.tokens[h])
            for h, c in self.collections_.items()
        ]


class FakeHub:
    def __init__(self) -> None:
        self.clock = Clock()
        self.settings = type("S", (), {"poll_interval": 30.0})()

    def jittered(self, seconds: float) -> float:
        return seconds

    async def limited(self, work: Any) -> Any:
        return await work()


def test_only_task_lists_wake_a_tasks_ping() -> None:
    client, hub = FakeClient(), FakeHub()
    hints: list[Hint] = []
    folders = frozenset({"/u/tasks/", "/u/both/"})
    poller = DavPoller(FolderKind.TASKS, client, hub, folders, hints.append, lambda: None)  # type: ignore[arg-type]
    ensureDeferred(poller.start())
    assert hints == [Hint(FolderKind.TASKS, resync=True)]
    client.tokens["/u/calendar/"] = client.tokens["/u/contacts/"] = "2"
    hub.clock.advance(30)
    assert len(hints) == 1  # an events-only calendar, an address book: not a task list
    client.tokens["/u/tasks/"] = "2"
    hub.clock.advance(30)
    assert hints[-1] == Hint(FolderKind.TASKS, folders=frozenset({"/u/tasks/"}))
    client.collections_["/u/errands/"] = ("VTODO",)
    client.tokens["/u/errands/"] = "1"
    hub.clock.advance(30)
    assert hints[-1].hierarchy
