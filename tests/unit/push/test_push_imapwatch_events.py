"""What the mail watcher makes of untagged IMAP responses (NOTIFY and IDLE modes)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from opush.backends.imap.parser import Response
from opush.push.hub import Hint, PushHub, PushSettings
from opush.push.imapwatch import ImapMailWatcher, idle_choice
from opush.storage.interfaces import FolderKind


def watcher(mode: str, idle_folder: str | None = None) -> tuple[ImapMailWatcher, list[Hint]]:
    hints: list[Hint] = []
    hub = PushHub(Clock(), PushSettings())
    w = ImapMailWatcher(hub, store=None, folders=frozenset(), emit=hints.append, lost=lambda: None)  # type: ignore[arg-type]
    w.mode = mode
    w.idle_folder = idle_folder
    return w, hints


def star(kind: str, data: list[Any], number: int | None = None) -> Response:
    return Response(tag="*", kind=kind, number=number, data=data)


def test_idle_choice_prefers_inbox() -> None:
    assert idle_choice(frozenset({"Work", "INBOX", "Archive"})) == "INBOX"
    assert idle_choice(frozenset({"Work", "Archive"})) == "Archive"
    assert idle_choice(frozenset()) is None


def test_notify_status_and_list_responses() -> None:
    w, hints = watcher("notify")
    w._on_response(star("STATUS", ["INBOX", ["MESSAGES", "2", "UIDNEXT", "3"]]))
    w._on_response(star("STATUS", ["&AMk-t&AOk-", ["HIGHESTMODSEQ", "5"]]))  # "Été", mUTF-7
    w._on_response(star("LIST", [[], "/", "Projects"]))
    w._on_response(star("OK", [], None))  # "* OK Still here": nothing
    assert hints == [
        Hint(FolderKind.MAIL, frozenset({"INBOX"})),
        Hint(FolderKind.MAIL, frozenset({"Été"})),
        Hint(FolderKind.MAIL, frozenset({"Projects"}), hierarchy=True),
    ]


def test_idle_message_events_name_the_idle_folder() -> None:
    w, hints = watcher("idle", "INBOX")
    w._on_response(star("EXISTS", [], 3))
    w._on_response(star("FETCH", [["FLAGS", ["\\Seen"]]], 1))
    w._on_response(star("EXPUNGE", [], 1))
    assert [h.folders for h in hints] == [frozenset({"INBOX"})] * 3


def test_events_are_ignored_while_switching_folders_or_stopped() -> None:
    w, hints = watcher("idle", "INBOX")
    w._busy = True  # EXAMINE of the next folder answers EXISTS too
    w._on_response(star("EXISTS", [], 3))
    w._busy = False
    w.stopped = True
    w._on_response(star("EXISTS", [], 4))
    assert hints == []
