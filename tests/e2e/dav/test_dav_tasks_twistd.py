"""EAS Tasks (MS-ASTASK) on a real `twistd -n opush` in the standalone profile (Dovecot +
Radicale), at 14.1 and 16.1: FolderSync shows the Tasks folder, Sync with FilterType 8 brings
the incomplete tasks another CalDAV client stored (and drops one completed meanwhile), what
the device adds, completes and deletes reaches Radicale."""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from opush.wbxml import E, decode, ns
from tests.support.server import OpushServer, start_server
from tests.support.services import PASSWORD, LocalServices
from tests.support.sync import EasDevice, child_text

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
A, F, T, B = ns.AIRSYNC, ns.FOLDERHIERARCHY, ns.TASKS, ns.AIRSYNCBASE


@pytest.fixture
def server(
    tmp_path: Path, dovecot: LocalServices, radicale: LocalServices
) -> Iterator[OpushServer]:
    s = start_server(tmp_path)
    yield s
    s.stop()


def dav(services: LocalServices, user: str, method: str, path: str,
        body: bytes | None = None) -> tuple[int, bytes]:  # fmt: skip
    req = urllib.request.Request(services.radicale_url.rstrip("/") + path, data=body, method=method)
    req.add_header(
        "Authorization", "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    )
    if body is not None:
        req.add_header("Content-Type", "text/calendar")
    if method == "PROPFIND":
        req.add_header("Depth", "1")
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


def options() -> object:
    """Incomplete tasks only (MS-ASCMD 2.2.3.69.2 FilterType 8), plain-text bodies."""
    return E(
        A,
        "Options",
        E(A, "FilterType", text=8),
        E(B, "BodyPreference", E(B, "Type", text=1), E(B, "TruncationSize", text=5000)),
    )


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_tasks_on_twistd(
    server: OpushServer, radicale: LocalServices, fresh_dav_user: str, version: str
) -> None:
    user = fresh_dav_user
    dev = EasDevice(f"127.0.0.1:{server.http_port}", user, f"TWISTDTASK{version[:2]}", version)
    dev.client._transport.base_url = server.url
    dev.provision()
    response = dev.post("FolderSync", E(F, "FolderSync", E(F, "SyncKey", text="0")))
    assert response.status_code == 200
    adds = {
        a.findtext(f"{{{F}}}Type"): (
            a.findtext(f"{{{F}}}ServerId"),
            a.findtext(f"{{{F}}}DisplayName"),
        )
        for a in decode(response.content).iter(f"{{{F}}}Add")
    }
    assert adds["7"][1] == "Tasks" and adds["8"][1] == "Calendar"
    tasks = int(adds["7"][0] or 0)
    # A user task list (type 15) created from the device is a VTODO calendar in Radicale.
    folder_key = decode(response.content).findtext(f"{{{F}}}SyncKey") or ""
    created = dev.post(
        "FolderCreate",
        E(
            F,
            "FolderCreate",
            E(F, "SyncKey", text=folder_key),
            E(F, "ParentId", text="0"),
            E(F, "DisplayName", text="Errands"),
            E(F, "Type", text=15),
        ),
    )
    assert decode(created.content).findtext(f"{{{F}}}Status") == "1"
    status, listing = dav(radicale, user, "PROPFIND", f"/{user}/")
    assert status == 207 and b"Errands" in listing and b'name="VTODO"' in listing

    # Another client stores an open task and a completed one (opush made the list).
    href = f"/{user}/tasks/"
    assert dav(radicale, user, "PUT", f"{href}open.ics", todo("open-1", "Open one"))[0] == 201
    done = todo("done-1", "Done one", "STATUS:COMPLETED\r\nCOMPLETED:20261121T100000Z\r\n")
    assert dav(radicale, user, "PUT", f"{href}done.ics", done)[0] == 201
    key = dev.sync(tasks, "0", options=options()).sync_key or ""
    assert dev.estimate(tasks, key, filter_type=8) == (1, 1)  # GetItemEstimate: the open one
    got = dev.sync(tasks, key)  # no Options: the remembered FilterType (OP-135)
    (add,) = got.of("Add")
    data = add.find(f"{{{A}}}ApplicationData")
    assert data is not None
    assert data.findtext(f"{{{T}}}Subject") == "Open one"
    assert data.findtext(f"{{{T}}}Complete") == "0"
    assert data.findtext(f"{{{T}}}DueDate") == "2026-11-30T00:00:00.000Z"
    open_id = child_text(add, "ServerId") or ""
    key = got.sync_key or ""

    # The device adds a task, then completes it (a Sync without Options: the filter stays).
    new = E(
        A,
        "Add",
        E(A, "ClientId", text="t-1"),
        E(
            A,
            "ApplicationData",
            E(B, "Body", E(B, "Type", text=1), E(B, "Data", text="Two litres")),
            E(T, "Subject", text="Buy milk"),
            E(T, "Importance", text=2),
            E(T, "UtcDueDate", text="2026-12-01T23:00:00.000Z"),
            E(T, "DueDate", text="2026-12-02T00:00:00.000Z"),
            E(T, "Complete", text=0),
            E(T, "Sensitivity", text=0),
            E(T, "ReminderSet", text=0),
        ),
    )
    other = E(
        A,
        "Add",
        E(A, "ClientId", text="t-2"),
        E(A, "ApplicationData", E(T, "Subject", text="Call Ann"), E(T, "Complete", text=0)),
    )
    answer = dev.sync(tasks, key, commands=[new, other])
    responses = answer.responses()
    assert [child_text(r, "Status") for r in responses] == ["1", "1"]
    server_id, other_id = (child_text(r, "ServerId") or "" for r in responses)
    item = server_id.split(":", 1)[1]
    status, body = dav(radicale, user, "GET", f"{href}{item}")
    assert status == 200
    text = body.decode()
    assert "SUMMARY:Buy milk" in text and "DESCRIPTION:Two litres" in text
    assert "PRIORITY:1" in text and "DUE;VALUE=DATE:20261202" in text
    key = answer.sync_key or ""
    complete = E(
        A,
        "Change",
        E(A, "ServerId", text=server_id),
        E(
            A,
            "ApplicationData",
            E(T, "Subject", text="Buy milk"),
            E(T, "Complete", text=1),
            E(T, "DateCompleted", text="2026-11-22T18:00:00.000Z"),
        ),
    )
    answer = dev.sync(tasks, key, commands=[complete])
    assert answer.status == 1 and answer.responses() == []
    # Completed, it is out of the filter: the device drops it (MS-ASCMD 2.2.3.69.2).
    assert answer.server_ids("Delete") == [server_id]
    key = answer.sync_key or ""
    _, body = dav(radicale, user, "GET", f"{href}{item}")
    assert "STATUS:COMPLETED" in body.decode() and "COMPLETED:20261122T180000Z" in body.decode()

    # Another client completes the open task: out of the filter, the device drops it.
    completed = todo("open-1", "Open one", "STATUS:COMPLETED\r\n")
    assert dav(radicale, user, "PUT", f"{href}open.ics", completed)[0] in (200, 201, 204)
    answer = dev.sync(tasks, key)
    assert answer.server_ids("Delete") == [open_id]
    key = answer.sync_key or ""

    # The device deletes a task: gone from Radicale.
    answer = dev.sync(tasks, key, commands=[E(A, "Delete", E(A, "ServerId", text=other_id))])
    assert answer.status == 1 and answer.responses() == []
    assert dav(radicale, user, "GET", f"{href}{other_id.split(':', 1)[1]}")[0] == 404
    assert dav(radicale, user, "GET", f"{href}{item}")[0] == 200  # completed, not deleted
