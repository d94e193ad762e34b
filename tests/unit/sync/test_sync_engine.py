"""The sync engine with the real mail source over an in-memory IMAP double: windows, retries,
keys, client commands, filters, resets, failures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from lxml import etree

from opush.backends.interfaces import MailBackendUnavailable
from opush.backends.mailsource import MailItemSource
from opush.sync.engine import (
    ClientCommand,
    CollectionOutcome,
    CollectionRequest,
    SyncEngine,
    pending_estimate,
    window_size,
)
from opush.wbxml import E, ns
from tests.support.sync import DeviceView, SyncAnswer, child_text, flag_prop, read_prop
from tests.support.syncfakes import FakeMailStore, MemoryStateStore, text_message
from tests.unit.sync.conftest import run

A = ns.AIRSYNC
USER, DEVICE, CID = "alice@example.org", "DEV1", 7
NOW = datetime(2026, 9, 21, 12, 0, tzinfo=UTC)


@attrs.define
class Rig:
    mail: FakeMailStore
    store: MemoryStateStore = attrs.field(factory=MemoryStateStore)
    version: tuple[int, int] = (14, 1)
    folder: str = "INBOX"
    drafts: bool = False
    outbox: Any = None

    def engine(self) -> SyncEngine:
        return SyncEngine(self.store, USER, DEVICE, self.version, now=lambda: NOW)

    def source(self) -> MailItemSource:
        return MailItemSource(self.mail, self.folder, drafts=self.drafts, outbox=self.outbox)

    def sync(self, key: str, window: int = 100, **kw: Any) -> CollectionOutcome:
        req = CollectionRequest(CID, key, window, **kw)
        return run(self.engine().sync(req, self.source()))


def answer(outcome: CollectionOutcome) -> SyncAnswer:
    return SyncAnswer(None, outcome.element)


def key_of(outcome: CollectionOutcome) -> str:
    return child_text(outcome.element, "SyncKey") or ""


def status(outcome: CollectionOutcome) -> int:
    return int(child_text(outcome.element, "Status") or 0)


def full_sync(rig: Rig, key: str, view: DeviceView, window: int = 100) -> str:
    while True:
        out = rig.sync(key, window)
        assert status(out) == 1
        view.apply(answer(out))
        key = key_of(out)
        if not out.more_available:
            return key


@pytest.fixture(params=["qresync", "condstore", "diff"])
def rig(request: pytest.FixtureRequest) -> Rig:
    return Rig(FakeMailStore(mode=request.param))


def test_window_sizes() -> None:
    assert window_size(None, None, 50, None) == 50
    assert window_size(None, 30, 50, None) == 30
    assert window_size(10, 30, 50, None) == 10
    assert window_size(100, None, 50, 25) == 25  # OP-177
    assert window_size(1000, None, 50, None) == 512  # MS-ASCMD 2.2.3.199


def test_initial_sync_in_windows_each_message_once(rig: Rig) -> None:
    uids = [rig.mail.deliver("INBOX", text_message(f"m{i}")) for i in range(53)]
    first = rig.sync("0")
    assert status(first) == 1 and not answer(first).commands()
    view = DeviceView()
    key = key_of(first)
    windows = 0
    while True:
        out = rig.sync(key, 10)
        windows += 1
        view.apply(answer(out))
        key = key_of(out)
        assert len(answer(out).commands()) <= 10
        if not out.more_available:
            break
    assert windows == 6
    assert not view.duplicates and not view.problems
    assert set(view.items) == {f"{CID}:{u}" for u in uids}


def test_newest_first(rig: Rig) -> None:
    for i in range(5):
        rig.mail.deliver("INBOX", text_message(f"m{i}"), date=NOW - timedelta(days=5 - i))
    out = rig.sync(key_of(rig.sync("0")), 2)
    assert answer(out).server_ids("Add") == [f"{CID}:5", f"{CID}:4"]


def test_retried_request_gets_the_same_answer(rig: Rig) -> None:
    for i in range(5):
        rig.mail.deliver("INBOX", text_message(f"m{i}"))
    k0 = key_of(rig.sync("0"))
    a1 = rig.sync(k0, 3)
    rig.mail.deliver("INBOX", text_message("late"))  # must not change the replay
    again = rig.sync(k0, 3)
    assert again.replayed
    assert etree.tostring(again.element) == etree.tostring(a1.element)
    # The device then goes on with the new key: nothing lost, nothing twice.
    view = DeviceView()
    view.apply(answer(a1))
    full_sync(rig, key_of(a1), view)
    assert not view.duplicates
    assert len(view.items) == 6


def test_unknown_and_stale_keys_are_status_3_then_clean_restart(rig: Rig) -> None:
    rig.mail.deliver("INBOX", text_message("m"))
    assert status(rig.sync("nonsense")) == 3
    k0 = key_of(rig.sync("0"))
    k1 = key_of(rig.sync(k0))
    k2 = key_of(rig.sync(k1))
    assert status(rig.sync(k0)) == 3  # two keys back: gone
    assert status(rig.sync(k2)) == 1
    view = DeviceView()
    full_sync(rig, key_of(rig.sync("0")), view)
    assert len(view.items) == 1


def test_incremental_changes_server_to_client(rig: Rig) -> None:
    u1 = rig.mail.deliver("INBOX", text_message("a"))
    u2 = rig.mail.deliver("INBOX", text_message("b"))
    u3 = rig.mail.deliver("INBOX", text_message("c"))
    view = DeviceView()
    key = full_sync(rig, key_of(rig.sync("0")), view)
    rig.mail.flag("INBOX", u1, add=["\\Seen"])
    rig.mail.flag("INBOX", u2, add=["\\Flagged"])
    rig.mail.expunge("INBOX", u3)
    u4 = rig.mail.deliver("INBOX", text_message("d"))
    out = rig.sync(key)
    a = answer(out)
    assert a.server_ids("Delete") == [f"{CID}:{u3}"]
    assert sorted(a.server_ids("Change")) == sorted([f"{CID}:{u1}", f"{CID}:{u2}"])
    assert a.server_ids("Add") == [f"{CID}:{u4}"]
    view.apply(a)
    assert view.state() == {f"{CID}:{u}": v for u, v in rig.mail.view("INBOX").items()}
    # Nothing changed: nothing sent.
    again = rig.sync(key_of(out))
    assert not answer(again).commands()


def test_no_change_sync_is_one_status_with_qresync() -> None:
    rig = Rig(FakeMailStore(mode="qresync"))
    for i in range(20):
        rig.mail.deliver("INBOX", text_message(f"m{i}"))
    key = full_sync(rig, key_of(rig.sync("0")), DeviceView())
    rig.mail.calls.clear()
    rig.sync(key)
    assert rig.mail.calls == ["CHANGES"]  # no listing, no fetch


def test_client_changes_and_no_echo(rig: Rig) -> None:
    u1 = rig.mail.deliver("INBOX", text_message("a"))
    u2 = rig.mail.deliver("INBOX", text_message("b"))
    view = DeviceView()
    key = full_sync(rig, key_of(rig.sync("0")), view)
    cmds = [
        ClientCommand("Change", f"{CID}:{u1}", data=E(A, "ApplicationData", read_prop(True))),
        ClientCommand("Change", f"{CID}:{u2}", data=E(A, "ApplicationData", flag_prop(True))),
    ]
    out = rig.sync(key, commands=cmds)
    assert not answer(out).responses()  # successful Changes get no Response
    assert not answer(out).commands()  # and are not echoed back
    assert rig.mail.view("INBOX") == {u1: (True, False), u2: (False, True)}
    assert out.summary_in.change == 2
    after = rig.sync(key_of(out))
    assert not answer(after).commands()


def test_delete_moves_to_trash_or_expunges(rig: Rig) -> None:
    u1 = rig.mail.deliver("INBOX", text_message("a"))
    u2 = rig.mail.deliver("INBOX", text_message("b"))
    key = full_sync(rig, key_of(rig.sync("0")), DeviceView())
    out = rig.sync(key, commands=[ClientCommand("Delete", f"{CID}:{u1}")])
    assert len(rig.mail.folder("Trash").messages) == 1
    out = rig.sync(
        key_of(out), commands=[ClientCommand("Delete", f"{CID}:{u2}")], deletes_as_moves=False
    )
    assert len(rig.mail.folder("Trash").messages) == 1
    assert rig.mail.view("INBOX") == {}
    assert not answer(out).commands()


def test_invalid_server_ids_get_their_own_status(rig: Rig) -> None:
    u1 = rig.mail.deliver("INBOX", text_message("a"))
    key = full_sync(rig, key_of(rig.sync("0")), DeviceView())
    cmds = [
        ClientCommand("Change", "garbage", data=E(A, "ApplicationData", read_prop(True))),
        ClientCommand("Delete", f"{CID + 1}:{u1}"),
        ClientCommand("Fetch", f"{CID}:999"),
        ClientCommand("Change", f"{CID}:{u1}", data=E(A, "ApplicationData", read_prop(True))),
    ]
    out = rig.sync(key, commands=cmds)
    assert status(out) == 1
    statuses = [
        (etree.QName(r).localname, child_text(r, "ServerId"), child_text(r, "Status"))
        for r in answer(out).responses()
    ]
    assert statuses == [
        ("Change", "garbage", "8"),
        ("Delete", f"{CID + 1}:{u1}", "8"),
        ("Fetch", f"{CID}:999", "8"),
    ]
    assert rig.mail.view("INBOX")[u1] == (True, False)


def test_an_occurrence_of_a_mail_is_a_protocol_error_and_deletes_nothing(rig: Rig) -> None:
    """MS-ASAIRS 2.2.2.25 InstanceId names an occurrence; mail has none.  The Delete is
    refused with its own status naming the occurrence, and the mail stays."""
    u1 = rig.mail.deliver("INBOX", text_message("a"))
    key = full_sync(rig, key_of(rig.sync("0")), DeviceView())
    cmd = ClientCommand("Delete", f"{CID}:{u1}", instance_id="20261210T090000Z")
    out = rig.sync(key, commands=[cmd])
    (response,) = answer(out).responses()
    assert child_text(response, "Status") == "4"
    assert response.findtext(f"{{{ns.AIRSYNCBASE}}}InstanceId") == "20261210T090000Z"
    assert u1 in rig.mail.view("INBOX")


def test_fetch_and_responses_before_commands(rig: Rig) -> None:
    u1 = rig.mail.deliver("INBOX", text_message("a"))
    key = full_sync(rig, key_of(rig.sync("0")), DeviceView())
    rig.mail.deliver("INBOX", text_message("b"))
    out = rig.sync(key, commands=[ClientCommand("Fetch", f"{CID}:{u1}")])
    tags = [etree.QName(c).localname for c in out.element]
    assert tags.index("Responses") < tags.index("Commands")  # OP-186
    fetch = answer(out).responses()[0]
    assert child_text(fetch, "Status") == "1"
    assert fetch.find(f"{{{A}}}ApplicationData") is not None


def test_options_are_remembered(rig: Rig) -> None:
    rig.mail.deliver("INBOX", text_message("a", body="x" * 2000))
    b = ns.AIRSYNCBASE
    opts = E(
        A, "Options", E(b, "BodyPreference", E(b, "Type", text=1), E(b, "TruncationSize", text=100))
    )
    k0 = key_of(rig.sync("0", options=[opts], filter_type=None))
    out = rig.sync(k0)  # no Options: the remembered ones (OP-135)
    data = answer(out).of("Add")[0]
    body = data.find(f".//{{{b}}}Data")
    assert body is not None and len(body.text or "") <= 100
    assert data.findtext(f".//{{{b}}}Truncated") == "1"


def test_filter_type_and_its_change(rig: Rig) -> None:
    old = rig.mail.deliver("INBOX", text_message("old"), date=NOW - timedelta(days=20))
    new = rig.mail.deliver("INBOX", text_message("new"), date=NOW - timedelta(days=1))
    week = [E(A, "Options", E(A, "FilterType", text=3))]
    k0 = key_of(rig.sync("0", options=week, filter_type=3))
    out = rig.sync(k0, options=week, filter_type=3)
    assert answer(out).server_ids("Add") == [f"{CID}:{new}"]  # OP-129
    everything = [E(A, "Options", E(A, "FilterType", text=0))]
    out = rig.sync(key_of(out), options=everything, filter_type=0)
    assert answer(out).server_ids("Add") == [f"{CID}:{old}"]
    day = [E(A, "Options", E(A, "FilterType", text=1))]
    out = rig.sync(key_of(out), options=day, filter_type=1)
    assert answer(out).server_ids("SoftDelete") == [f"{CID}:{old}"]


def test_uidvalidity_change_is_status_3_and_a_clean_restart(rig: Rig) -> None:
    for i in range(3):
        rig.mail.deliver("INBOX", text_message(f"m{i}"))
    key = full_sync(rig, key_of(rig.sync("0")), DeviceView())
    rig.mail.reset_uidvalidity("INBOX")
    assert status(rig.sync(key)) == 3
    view = DeviceView()
    full_sync(rig, key_of(rig.sync("0")), view)
    assert set(view.items) == {f"{CID}:{u}" for u in rig.mail.view("INBOX")}


def test_backend_failure_advances_nothing(rig: Rig) -> None:
    for i in range(4):
        rig.mail.deliver("INBOX", text_message(f"m{i}"))
    k0 = key_of(rig.sync("0"))
    puts = rig.store.puts
    rig.mail.fail_next = 1
    with pytest.raises(MailBackendUnavailable):
        rig.sync(k0, 2)
    assert rig.store.puts == puts
    view = DeviceView()
    full_sync(rig, k0, view, window=2)
    assert len(view.items) == 4 and not view.duplicates


def test_failure_while_rendering_advances_nothing(rig: Rig) -> None:
    for i in range(4):
        rig.mail.deliver("INBOX", text_message(f"m{i}"))
    k0 = key_of(rig.sync("0"))
    rig.mail.fail_next = 0
    source = rig.source()

    async def broken(ids: Sequence[str], request: Any) -> Any:
        raise MailBackendUnavailable("dropped while fetching")

    source.render = broken  # type: ignore[method-assign]
    with pytest.raises(MailBackendUnavailable):
        run(rig.engine().sync(CollectionRequest(CID, k0, 2), source))
    view = DeviceView()
    full_sync(rig, k0, view, window=2)
    assert len(view.items) == 4


def test_estimate_counts_pending_and_new(rig: Rig) -> None:
    for i in range(7):
        rig.mail.deliver("INBOX", text_message(f"m{i}"))
    k0 = key_of(rig.sync("0"))
    out = rig.sync(k0, 3)
    rig.mail.deliver("INBOX", text_message("late"))
    est = run(pending_estimate(rig.store, USER, DEVICE, CID, key_of(out), rig.source(), NOW))
    assert est == 5
    assert run(pending_estimate(rig.store, USER, DEVICE, CID, "bad", rig.source(), NOW)) is None


def test_drafts_add_is_16_only_and_idempotent() -> None:
    rig = Rig(FakeMailStore(), folder="Drafts", drafts=True, version=(16, 1))
    rig.mail.folder("Drafts")
    k = key_of(rig.sync("0"))
    k = key_of(rig.sync(k))
    b = ns.AIRSYNCBASE
    data = E(
        A,
        "ApplicationData",
        E(ns.EMAIL, "To", text="bob@example.org"),
        E(ns.EMAIL, "Subject", text="draft"),
        E(b, "Body", E(b, "Type", text=1), E(b, "Data", text="text")),
    )
    add = ClientCommand("Add", client_id="c1", data=data)
    out = rig.sync(k, commands=[add])
    resp = answer(out).responses()[0]
    assert child_text(resp, "Status") == "1"
    sid = child_text(resp, "ServerId")
    assert sid == f"{CID}:1"
    assert not answer(out).commands()  # not echoed
    again = rig.sync(key_of(out), commands=[add])  # same ClientId under a new key
    assert child_text(answer(again).responses()[0], "ServerId") == sid
    assert len(rig.mail.folder("Drafts").messages) == 1
    old = Rig(FakeMailStore(), folder="Drafts", drafts=True, version=(14, 1))
    old.mail.folder("Drafts")
    k = key_of(old.sync(key_of(old.sync("0"))))
    refused = old.sync(k, commands=[ClientCommand("Add", client_id="c2", data=data)])
    assert child_text(answer(refused).responses()[0], "Status") == "6"


def test_class_element_before_14() -> None:
    rig = Rig(FakeMailStore(), version=(12, 1))
    rig.mail.folder("INBOX")
    out = rig.sync("0")
    assert etree.QName(out.element[0]).localname == "Class"
    rig14 = Rig(FakeMailStore())
    rig14.mail.folder("INBOX")
    assert all(etree.QName(c).localname != "Class" for c in rig14.sync("0").element)


def test_record_move_keeps_the_device_view(rig: Rig) -> None:
    from opush.sync.moves import record_move

    u1 = rig.mail.deliver("INBOX", text_message("a"))
    rig.mail.folder("Trash")
    key = full_sync(rig, key_of(rig.sync("0")), DeviceView())
    trash = Rig(rig.mail, rig.store, folder="Trash")
    trash_cid = CID + 1

    def sync_trash(k: str) -> CollectionOutcome:
        return run(trash.engine().sync(CollectionRequest(trash_cid, k, 100), trash.source()))

    tkey = key_of(sync_trash(key_of(sync_trash("0"))))
    new_uid = rig.mail.move_out("INBOX", u1, "Trash")  # what MoveItems does over IMAP
    run(record_move(rig.store, USER, DEVICE, CID, u1, trash_cid, new_uid))
    out = rig.sync(key)
    assert not answer(out).server_ids("Delete")  # the device moved it itself
    t = sync_trash(tkey)
    assert not answer(t).server_ids("Add")  # and holds it under DstMsgId already


def test_has_changes_probe() -> None:
    from opush.backends.interfaces import Credentials, UserIdentity
    from opush.sync.probe import has_changes
    from tests.unit.sync.test_sync_command import FakeBackend, context

    state = MemoryStateStore()
    mail = FakeMailStore()
    mail.folder("INBOX")
    state.add_collection(USER, "DEV1", 1, "INBOX", 2)
    ctx = context(state, mail)
    creds = Credentials(UserIdentity("alice", "example.org", USER), "secret")
    del FakeBackend
    assert run(has_changes(ctx.runtime, creds, USER, "DEV1", 1)) is False  # never synced
    engine = SyncEngine(state, USER, "DEV1", (14, 1), now=lambda: NOW)
    source = MailItemSource(mail, "INBOX")
    k = key_of(run(engine.sync(CollectionRequest(1, "0", 10), source)))
    k = key_of(run(engine.sync(CollectionRequest(1, k, 10), source)))
    assert run(has_changes(ctx.runtime, creds, USER, "DEV1", 1)) is False
    mail.deliver("INBOX", text_message("new"))
    assert run(has_changes(ctx.runtime, creds, USER, "DEV1", 1)) is True


def test_draft_change_replaces_the_draft() -> None:
    rig = Rig(FakeMailStore(), folder="Drafts", drafts=True, version=(16, 1))
    b = ns.AIRSYNCBASE
    old = rig.mail.deliver("Drafts", text_message("draft v1"), flags=["\\Draft"])
    view = DeviceView()
    key = full_sync(rig, key_of(rig.sync("0")), view)
    data = E(
        A,
        "ApplicationData",
        E(ns.EMAIL, "To", text="bob@example.org"),
        E(ns.EMAIL, "Subject", text="draft v2"),
        E(b, "Body", E(b, "Type", text=1), E(b, "Data", text="second")),
    )
    out = rig.sync(key, commands=[ClientCommand("Change", f"{CID}:{old}", data=data)])
    a = answer(out)
    # The IMAP message is replaced, the device keeps its ServerId: nothing echoed back.
    assert a.server_ids("Delete") == [] and a.server_ids("Add") == []
    assert list(rig.mail.folder("Drafts").messages) == [old + 1]
    fetched = answer(rig.sync(key_of(out), commands=[ClientCommand("Fetch", f"{CID}:{old}")]))
    view.apply(fetched)
    assert [child_text(r, "Status") for r in fetched.responses()] == ["1"]
    subject = fetched.responses()[0].findtext(f"{{{A}}}ApplicationData/{{{ns.EMAIL}}}Subject")
    assert subject == "draft v2"


def test_aliased_items_are_seen_under_the_device_id() -> None:
    """A replaced item (new backend id, same ServerId): its changes come under the device's
    id, the old backend id vanishing is no Delete, the new one vanishing is."""
    from opush.sync.engine import merge_changes
    from opush.sync.ids import IdSet
    from opush.sync.interfaces import SourceChanges, SourceItem
    from opush.sync.state import CHANGE, DELETE, CollectionState

    st = CollectionState(cursor={}, have=IdSet(["5", "6"]), aliases={"5": "9"})
    merge_changes(
        st,
        SourceChanges(cursor={}, changed=(SourceItem("9"),), gone=frozenset({"5"})),
        None,
    )
    assert st.pending == {"5": CHANGE}
    st.pending.clear()
    merge_changes(
        st, SourceChanges(cursor={}, changed=(SourceItem("9"),)), None, exclude=frozenset({"5"})
    )
    assert st.pending == {}
    merge_changes(st, SourceChanges(cursor={}, gone=frozenset({"9"})), None)
    assert st.pending == {"5": DELETE} and st.aliases == {}
    restored = CollectionState.from_json(CollectionState(cursor={}, aliases={"1": "2"}).to_json())
    assert restored.aliases == {"1": "2"} and restored.source_id("1") == "2"


@pytest.mark.parametrize("conflict", [None, 1, 0])
def test_changed_on_both_sides_follows_the_conflict_option(rig: Rig, conflict: int | None) -> None:
    """MS-ASCMD 2.2.3.34: by default (and with Conflict 1) the server object replaces the
    client's, whose Change is answered with Status 7; with Conflict 0 the client's is kept."""
    uid = rig.mail.deliver("INBOX", text_message("both"))
    view = DeviceView()
    key = full_sync(rig, key_of(rig.sync("0")), view)
    sid = f"{CID}:{uid}"
    rig.mail.flag("INBOX", uid, add=["\\Flagged"])  # the server side changes it...
    out = rig.sync(  # ... while the device marks it read
        key,
        conflict=conflict,
        commands=[ClientCommand("Change", sid, data=E(A, "ApplicationData", read_prop(True)))],
    )
    a = answer(out)
    statuses = [child_text(r, "Status") for r in a.responses()]
    assert a.server_ids("Change") == [sid]  # the server's object goes to the device
    message = rig.mail.folder("INBOX").messages[uid]
    if conflict == 0:
        assert statuses == [] and "\\Seen" in message.flags
    else:
        assert statuses == ["7"] and "\\Seen" not in message.flags
    assert "\\Flagged" in message.flags


class _Outbox:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.sent_folder = "Sent"

    async def send(self, message: bytes) -> None:
        self.sent.append(message)


def test_draft_send_files_it_in_sent_and_tells_the_device() -> None:
    """email2:Send (MS-ASEMAIL 2.2.2.69) on a draft Add and on a draft Change: submitted,
    moved to Sent, and the device gets the Delete from Drafts."""
    mail = FakeMailStore()
    mail.folder("Sent")
    outbox = _Outbox()
    rig = Rig(mail, folder="Drafts", drafts=True, version=(16, 1), outbox=outbox)
    rig.mail.folder("Drafts")
    b = ns.AIRSYNCBASE
    data = E(A, "ApplicationData", E(ns.EMAIL, "To", text="bob@example.org"),
             E(ns.EMAIL, "Subject", text="now"), E(b, "Body", E(b, "Type", text=1),
                                                  E(b, "Data", text="text")))  # fmt: skip
    k = key_of(rig.sync(key_of(rig.sync("0"))))
    kept = rig.sync(k, commands=[ClientCommand("Add", client_id="c1", data=data)])
    sid = child_text(answer(kept).responses()[0], "ServerId") or ""
    changed = rig.sync(
        key_of(kept),
        commands=[ClientCommand("Change", sid, data=data, send=True)],
    )
    assert [m for m in outbox.sent if b"now" in m]
    assert list(rig.mail.folder("Drafts").messages) == []
    assert len(rig.mail.folder("Sent").messages) == 1
    deletes = answer(changed).server_ids("Delete")
    after = rig.sync(key_of(changed))
    later = answer(after).server_ids("Delete")
    assert deletes + later == [sid]
    sent_now = rig.sync(key_of(after), commands=[
        ClientCommand("Add", client_id="c2", data=data, send=True)])  # fmt: skip
    resp = answer(sent_now).responses()[0]
    assert child_text(resp, "Status") == "1"
    assert answer(sent_now).server_ids("Delete") + answer(rig.sync(key_of(sent_now))).server_ids(
        "Delete"
    ) == [child_text(resp, "ServerId")]
    assert len(rig.mail.folder("Sent").messages) == 2


def test_a_draft_whose_send_fails_stays_a_draft() -> None:
    """SMTP refusing the mail: the draft stays in Drafts (that is how the user sees it was not
    sent) and the device is not told it left."""

    class Failing(_Outbox):
        async def send(self, message: bytes) -> None:
            raise OSError("SMTP down")

    mail = FakeMailStore()
    mail.folder("Sent")
    rig = Rig(mail, folder="Drafts", drafts=True, version=(16, 1), outbox=Failing())
    rig.mail.folder("Drafts")
    b = ns.AIRSYNCBASE
    data = E(A, "ApplicationData", E(ns.EMAIL, "To", text="bob@example.org"),
             E(ns.EMAIL, "Subject", text="later"), E(b, "Body", E(b, "Type", text=1),
                                                    E(b, "Data", text="text")))  # fmt: skip
    k = key_of(rig.sync(key_of(rig.sync("0"))))
    out = rig.sync(k, commands=[ClientCommand("Add", client_id="c1", data=data, send=True)])
    assert child_text(answer(out).responses()[0], "Status") == "1"
    assert len(rig.mail.folder("Drafts").messages) == 1
    assert rig.mail.folder("Sent").messages == {}
    assert answer(out).server_ids("Delete") == []
    assert answer(rig.sync(key_of(out))).server_ids("Delete") == []
