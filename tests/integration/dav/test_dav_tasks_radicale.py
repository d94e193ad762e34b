"""CalDAV task lists against the real Radicale: the default Tasks folder and user task
folders, tasks written by other clients, device Add/Change/Delete, FilterType 8 (incomplete
tasks only), a calendar holding both events and tasks."""

from __future__ import annotations

import base64
import urllib.request
from datetime import UTC, datetime

import pytest
import pytest_twisted
from twisted.internet import reactor

from opush.backends.dav.client import DavClient
from opush.backends.dav.sources import DavCalendarSource, DavFolderSource
from opush.backends.dav.tasks import DavTaskFolderSource, DavTaskSource
from opush.backends.interfaces import Credentials, UserIdentity
from opush.content import tasks as tk
from opush.storage.interfaces import FolderKind
from opush.sync.interfaces import RenderRequest
from opush.wbxml import E, ns
from tests.support.services import PASSWORD, LocalServices

pytestmark = pytest.mark.integration
T = ns.TASKS
REQ = RenderRequest(collection_id=3, version=(14, 1))


def credentials(user: str) -> Credentials:
    login, _, domain = user.partition("@")
    return Credentials(UserIdentity(login, domain, user), PASSWORD)


def http(services: LocalServices, user: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
    req = urllib.request.Request(services.radicale_url.rstrip("/") + path, data=body, method=method)
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def todo(uid: str, summary: str, extra: str = "") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nSUMMARY:{summary}\r\n{extra}"
        "DUE;VALUE=DATE:20261130\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


def put(services: LocalServices, user: str, path: str, body: bytes) -> None:
    status, _ = http(services, user, "PUT", path, body, {"Content-Type": "text/calendar"})
    assert status in (200, 201, 204)


def app_data(item: tk.TaskItem) -> object:
    return E(ns.AIRSYNC, "ApplicationData", *tk.render_item(item, (14, 1)))


@pytest_twisted.ensureDeferred
async def test_default_task_list_and_items_both_ways(
    radicale: LocalServices, fresh_dav_user: str
) -> None:
    user = fresh_dav_user
    client = DavClient(reactor, radicale.radicale_url, user, PASSWORD)
    lists = DavTaskFolderSource(client)
    folders = await lists.list_folders()
    assert [(f.kind, f.folder_type, f.display_name) for f in folders] == [
        (FolderKind.TASKS, 7, "Tasks")
    ]
    href = folders[0].backend_id
    assert [f.backend_id for f in await lists.list_folders()] == [href]  # no second one
    # The tasks-only list is no calendar; the calendar made for events is no task list.
    calendars = await DavFolderSource(client, FolderKind.CALENDAR).list_folders()
    assert href not in {f.backend_id for f in calendars}
    assert [f.backend_id for f in await lists.list_folders()] == [href]

    source = DavTaskSource(client, credentials(user), href, 3)
    first = await source.changes(None)
    assert first.complete and first.changed == ()
    put(radicale, user, f"{href}milk.ics", todo("milk-1", "Buy milk", "PRIORITY:1\r\n"))
    news = await source.changes(first.cursor)
    assert [i.item_id for i in news.changed] == ["milk.ics"] and not news.complete
    rendered = await source.render(["milk.ics"], REQ)
    item = tk.parse_item(E(ns.AIRSYNC, "ApplicationData", *rendered["milk.ics"]))
    assert item.subject == "Buy milk" and item.importance == tk.HIGH and not item.complete
    assert item.due_local == datetime(2026, 11, 30)

    # The device adds a task, completes it, deletes it.
    new = tk.TaskItem(
        subject="Call Ann",
        due=datetime(2026, 12, 1, 23, tzinfo=UTC),
        due_local=datetime(2026, 12, 2),
        reminder=datetime(2026, 12, 2, 8, tzinfo=UTC),
        categories=("Work",),
    )
    added = await source.apply_add("c1", app_data(new), REQ)
    assert added.status == 1 and added.item_id and added.item_id.endswith(".ics")
    status, body = http(radicale, user, "GET", f"{href}{added.item_id}")
    assert status == 200 and b"SUMMARY:Call Ann" in body and b"DUE;VALUE=DATE:20261202" in body
    # Another client adds a property opush does not model: the device Change keeps it.
    text = body.decode().replace("END:VTODO", "X-OTHER:kept\r\nEND:VTODO")
    put(radicale, user, f"{href}{added.item_id}", text.encode())
    done = tk.TaskItem(
        subject="Call Ann",
        due=new.due,
        due_local=new.due_local,
        complete=True,
        date_completed=datetime(2026, 11, 28, 17, tzinfo=UTC),
    )
    assert (await source.apply_change(added.item_id, app_data(done), REQ)).status == 1
    _, body = http(radicale, user, "GET", f"{href}{added.item_id}")
    assert b"STATUS:COMPLETED" in body and b"COMPLETED:20261128T170000Z" in body
    assert b"X-OTHER:kept" in body and b"SEQUENCE:1" in body
    rendered = await source.render([added.item_id], REQ)
    back = tk.parse_item(E(ns.AIRSYNC, "ApplicationData", *rendered[added.item_id]))
    assert back.complete and back.date_completed == done.date_completed
    assert back.due == new.due and back.due_local == new.due_local
    assert (await source.apply_change("nope.ics", app_data(done), REQ)).status == 8
    bad = E(ns.AIRSYNC, "ApplicationData", E(T, "Recurrence", E(T, "Type", text=9)))
    assert (await source.apply_add("c2", bad, REQ)).status == 6
    await source.apply_delete([added.item_id], False)
    status, _ = http(radicale, user, "GET", f"{href}{added.item_id}")
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_filter_incomplete_tasks_only(radicale: LocalServices, fresh_dav_user: str) -> None:
    user = fresh_dav_user
    client = DavClient(reactor, radicale.radicale_url, user, PASSWORD)
    (folder,) = await DavTaskFolderSource(client).list_folders()
    href = folder.backend_id
    put(radicale, user, f"{href}open.ics", todo("open-1", "Open"))
    put(radicale, user, f"{href}done.ics", todo("done-1", "Done", "STATUS:COMPLETED\r\n"))

    everything = DavTaskSource(client, credentials(user), href, 3)
    everything.filter_type = 0
    listing = await everything.changes(None)
    assert {i.item_id for i in listing.changed} == {"open.ics", "done.ics"}

    source = DavTaskSource(client, credentials(user), href, 3)
    source.filter_type = 8  # the Sync's Options (MS-ASCMD 2.2.3.69.2)
    first = await source.changes(None)
    assert first.complete and [i.item_id for i in first.changed] == ["open.ics"]
    # A later Sync without Options: the filter comes from the cursor.
    later = DavTaskSource(client, credentials(user), href, 3)
    put(radicale, user, f"{href}open.ics", todo("open-1", "Open", "STATUS:COMPLETED\r\n"))
    completed = await later.changes(first.cursor)
    assert completed.changed == () and completed.gone == frozenset({"open.ics"})
    put(radicale, user, f"{href}done.ics", todo("done-1", "Done again"))
    reopened = await later.changes(completed.cursor)
    assert [i.item_id for i in reopened.changed] == ["done.ics"]


@pytest_twisted.ensureDeferred
async def test_user_task_lists_and_a_mixed_calendar(
    radicale: LocalServices, fresh_dav_user: str
) -> None:
    user = fresh_dav_user
    client = DavClient(reactor, radicale.radicale_url, user, PASSWORD)
    lists = DavTaskFolderSource(client)
    (default,) = await lists.list_folders()
    assert lists.creatable_types == frozenset({15})
    errands = await lists.create(default, "Errands", 15)
    assert (errands.folder_type, errands.parent_backend_id) == (15, default.backend_id)
    # A calendar another client made for events and tasks is both kinds of folder.
    await client.make_collection("both", "calendar", "Both", components=("VEVENT", "VTODO"))
    listed = {f.display_name: f for f in await lists.list_folders()}
    assert listed["Tasks"].folder_type == 7
    assert (listed["Errands"].folder_type, listed["Both"].folder_type) == (15, 15)
    calendars = {
        f.display_name for f in await DavFolderSource(client, FolderKind.CALENDAR).list_folders()
    }
    assert "Both" in calendars and "Errands" not in calendars
    both = listed["Both"].backend_id
    put(radicale, user, f"{both}t.ics", todo("t-1", "A task"))
    event = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e-1\r\nDTSTAMP:20261120T100000Z\r\n"
        "DTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nSUMMARY:Event\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    put(radicale, user, f"{both}e.ics", event.encode())
    source = DavTaskSource(client, credentials(user), both, 4)
    assert [i.item_id for i in (await source.changes(None)).changed] == ["t.ics"]
    # Its Calendar folder shows the event only, even as tasks come and go.
    events = DavCalendarSource(client, credentials(user), both, 5)
    listing = await events.changes(None)
    assert [i.item_id for i in listing.changed] == ["e.ics"]
    put(radicale, user, f"{both}t2.ics", todo("t-2", "Another task"))
    assert (await events.changes(listing.cursor)).changed == ()
    assert await lists.rename(errands, default, "Chores") == {
        errands.backend_id: errands.backend_id
    }
    assert await lists.delete(errands) == [errands.backend_id]
    assert {f.display_name for f in await lists.list_folders()} == {"Tasks", "Both"}
