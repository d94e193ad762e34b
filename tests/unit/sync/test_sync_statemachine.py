"""Hypothesis state machine: IMAP-side changes (deliver, flag, expunge, move out, UIDVALIDITY
reset) interleaved with device Syncs (any WindowSize), client Changes/Deletes, lost responses
(the device retries the same key), and the IMAP server dropping mid-Sync.  After every
complete sync the device's view equals the mailbox, with no duplicate and no unknown id."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from lxml import etree

from opush.backends.interfaces import MailBackendUnavailable
from opush.backends.mailsource import MailItemSource
from opush.sync.engine import ClientCommand, CollectionRequest, SyncEngine
from opush.wbxml import E, ns
from tests.support.sync import DeviceView, SyncAnswer, child_text, flag_prop, read_prop
from tests.support.syncfakes import FakeMailStore, MemoryStateStore, text_message
from tests.unit.sync.conftest import run

CID = 3
A = ns.AIRSYNC


class SyncMachine(RuleBasedStateMachine):
    mode = "qresync"

    def __init__(self) -> None:
        super().__init__()
        self.mail = FakeMailStore(mode=self.mode)
        self.mail.folder("INBOX")
        self.mail.folder("Other")
        self.store = MemoryStateStore()
        self.key = "0"
        self.view = DeviceView()
        self.queued: list[ClientCommand] = []
        self.counter = 0

    def engine(self) -> SyncEngine:
        return SyncEngine(self.store, "u", "d", (14, 1))

    def source(self) -> MailItemSource:
        return MailItemSource(self.mail, "INBOX")

    def uids(self) -> list[int]:
        return sorted(self.mail.folder("INBOX").messages)

    # ---------------------------------------------------------------- IMAP side
    @rule(n=st.integers(1, 4))
    def deliver(self, n: int) -> None:
        for _ in range(n):
            self.counter += 1
            self.mail.deliver("INBOX", text_message(f"m{self.counter}"))

    @precondition(lambda self: self.mail.folder("INBOX").messages)
    @rule(data=st.data(), seen=st.booleans(), flagged=st.booleans())
    def flag(self, data: Any, seen: bool, flagged: bool) -> None:
        uid = data.draw(st.sampled_from(self.uids()))
        add = [f for f, on in (("\\Seen", seen), ("\\Flagged", flagged)) if on]
        remove = [f for f, on in (("\\Seen", seen), ("\\Flagged", flagged)) if not on]
        self.mail.flag("INBOX", uid, add, remove)

    @precondition(lambda self: self.mail.folder("INBOX").messages)
    @rule(data=st.data())
    def expunge(self, data: Any) -> None:
        self.mail.expunge("INBOX", data.draw(st.sampled_from(self.uids())))

    @precondition(lambda self: self.mail.folder("INBOX").messages)
    @rule(data=st.data())
    def move_out(self, data: Any) -> None:
        self.mail.move_out("INBOX", data.draw(st.sampled_from(self.uids())), "Other")

    @rule()
    def uidvalidity_reset(self) -> None:
        self.mail.reset_uidvalidity("INBOX")

    # ---------------------------------------------------------------- device side
    @precondition(lambda self: self.view.items)
    @rule(data=st.data(), read=st.booleans(), flagged=st.booleans())
    def device_change(self, data: Any, read: bool, flagged: bool) -> None:
        sid = data.draw(st.sampled_from(sorted(self.view.items)))
        if any(c.server_id == sid for c in self.queued):
            return
        self.queued.append(
            ClientCommand(
                "Change", sid, data=E(A, "ApplicationData", read_prop(read), flag_prop(flagged))
            )
        )
        self.view.items[sid].update(read=read, flagged=flagged)

    @precondition(lambda self: self.view.items)
    @rule(data=st.data())
    def device_delete(self, data: Any) -> None:
        sid = data.draw(st.sampled_from(sorted(self.view.items)))
        if any(c.server_id == sid for c in self.queued):
            return
        self.queued.append(ClientCommand("Delete", sid))
        del self.view.items[sid]

    def _request(self, window: int) -> CollectionRequest:
        fingerprint = f"{window}/{[(c.kind, c.server_id) for c in self.queued]}"
        return CollectionRequest(
            CID, self.key, window, commands=list(self.queued), fingerprint=fingerprint
        )

    def _apply(self, element: Any) -> bool:
        answer = SyncAnswer(None, element)
        status = answer.status
        if status == 3:
            # The key is void (UIDVALIDITY changed): the device starts again.
            self.key, self.view, self.queued = "0", DeviceView(), []
            return False
        assert status == 1, status
        for resp in answer.responses():
            if child_text(resp, "Status") == "8":
                # The server deleted it meanwhile: its Delete follows.
                pass
        self.view.apply(answer)
        self.key = answer.sync_key or self.key
        self.queued = []
        return answer.more

    @rule(
        window=st.integers(1, 6),
        lose=st.booleans(),
        fail=st.booleans(),
        retry_window=st.integers(1, 6),
    )
    def sync(self, window: int, lose: bool, fail: bool, retry_window: int = 0) -> None:
        if self.key == "0":
            out = run(self.engine().sync(CollectionRequest(CID, "0", window), self.source()))
            self.key = child_text(out.element, "SyncKey") or "0"
            return
        if fail:
            self.mail.fail_next = 1
            try:
                run(self.engine().sync(self._request(window), self.source()))
            except MailBackendUnavailable:
                pass
            self.mail.fail_next = 0
        out = run(self.engine().sync(self._request(window), self.source()))
        if lose:
            # The answer never reached the device: it sends the same request again.
            # The answer never reached the device: it sends the same request again, or
            # (another WindowSize) a different one with the same key.
            retry = retry_window or window
            again = run(self.engine().sync(self._request(retry), self.source()))
            first_status = SyncAnswer(None, out.element).status
            if retry == window and first_status != 3:
                assert again.replayed
                assert etree.tostring(again.element) == etree.tostring(out.element)
            out = again
        self._apply(out.element)

    @rule(window=st.integers(1, 6))
    def drain(self, window: int) -> None:
        """Sync until nothing more is available, then the device sees the mailbox."""
        for _ in range(200):
            if self.key == "0":
                self.sync(window, False, False, window)
                continue
            out = run(self.engine().sync(self._request(window), self.source()))
            if not self._apply(out.element) and self.key != "0":
                break
        expected = {f"{CID}:{uid}": state for uid, state in self.mail.view("INBOX").items()}
        assert self.view.state() == expected

    @invariant()
    def clean(self) -> None:
        assert not self.view.duplicates, self.view.duplicates
        assert not self.view.problems, self.view.problems


class SyncMachineDiff(SyncMachine):
    mode = "diff"


class SyncMachineCondstore(SyncMachine):
    mode = "condstore"


_settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSyncQresync = SyncMachine.TestCase
TestSyncQresync.settings = _settings
TestSyncDiff = SyncMachineDiff.TestCase
TestSyncDiff.settings = _settings
TestSyncCondstore = SyncMachineCondstore.TestCase
TestSyncCondstore.settings = _settings
