"""The standalone profile's calendars and address books on a real `twistd -n opush` (demo
configuration: Dovecot + Radicale): FolderSync shows them, Sync brings what another CalDAV/
CardDAV client stored, and what the device adds reaches Radicale."""

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
A, F, C, CAL = ns.AIRSYNC, ns.FOLDERHIERARCHY, ns.CONTACTS, ns.CALENDAR


@pytest.fixture
def server(
    tmp_path: Path, dovecot: LocalServices, radicale: LocalServices
) -> Iterator[OpushServer]:
    s = start_server(tmp_path)
    yield s
    s.stop()


def dav(services: LocalServices, user: str, method: str, path: str, body: bytes | None = None,
        content_type: str | None = None) -> tuple[int, bytes]:  # fmt: skip
    req = urllib.request.Request(services.radicale_url.rstrip("/") + path, data=body, method=method)
    req.add_header(
        "Authorization", "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    )
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def folders(dev: EasDevice) -> dict[str, tuple[str, str]]:
    """Type -> (ServerId, DisplayName) of a first FolderSync."""
    response = dev.post("FolderSync", E(F, "FolderSync", E(F, "SyncKey", text="0")))
    assert response.status_code == 200, (response.status_code, response.content[:200])
    answer = decode(response.content)
    out: dict[str, tuple[str, str]] = {}
    for add in answer.iter(f"{{{F}}}Add"):
        kind = add.findtext(f"{{{F}}}Type") or ""
        out[kind] = (
            add.findtext(f"{{{F}}}ServerId") or "",
            add.findtext(f"{{{F}}}DisplayName") or "",
        )
    return out


def test_calendar_and_contacts_on_twistd(
    server: OpushServer, radicale: LocalServices, fresh_dav_user: str
) -> None:
    dev = EasDevice(f"127.0.0.1:{server.http_port}", fresh_dav_user, "TWISTDDAV1", "14.1")
    dev.client._transport.base_url = server.url
    dev.provision()
    listed = folders(dev)
    assert listed["8"][1] == "Calendar" and listed["9"][1] == "Contacts"
    calendar, contacts = int(listed["8"][0]), int(listed["9"][0])

    # Another client (e.g. Thunderbird) stores an event: the device gets it.
    # opush made the user's default collections (extended MKCOL) at the first FolderSync.
    cal_href = f"/{fresh_dav_user}/calendar/"
    book = f"/{fresh_dav_user}/contacts/"
    event = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e2e-1\r\nDTSTAMP:20261101T000000Z\r\n"
        "DTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:Review\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    assert dav(
        radicale, fresh_dav_user, "PUT", f"{cal_href}review.ics", event.encode(), "text/calendar"
    )[0] in (200, 201)
    key = dev.sync(calendar, "0").sync_key or ""
    got = dev.sync(calendar, key)
    adds = got.of("Add")
    assert len(adds) == 1
    assert adds[0].findtext(f"{{{A}}}ApplicationData/{{{CAL}}}Subject") == "Review"

    # The device adds a contact: it lands in the address book.
    key = dev.sync(contacts, "0").sync_key or ""
    add = E(
        A,
        "Add",
        E(A, "ClientId", text="c-1"),
        E(A, "ApplicationData", E(C, "FirstName", text="Zoé"), E(C, "LastName", text="Martin")),
    )
    answer = dev.sync(contacts, key, commands=[add])
    (response,) = answer.responses()
    assert child_text(response, "Status") == "1"
    item = (child_text(response, "ServerId") or "").split(":", 1)[1]
    status, card = dav(radicale, fresh_dav_user, "GET", f"{book}{item}")
    assert status == 200 and "FN:Zoé Martin" in card.decode()


def test_one_occurrence_changed_and_deleted_from_a_16_1_device(
    server: OpushServer, radicale: LocalServices, fresh_dav_user: str
) -> None:
    """EAS 16.x Sync Change/Delete with airsyncbase:InstanceId (MS-ASAIRS 2.2.2.25) touch one
    occurrence of a series; the series itself stays, in the CalDAV copy and on the device."""
    from opush.content.ical import parse_event

    B = ns.AIRSYNCBASE
    dev = EasDevice(f"127.0.0.1:{server.http_port}", fresh_dav_user, "TWISTDDAV16", "16.1")
    dev.client._transport.base_url = server.url
    dev.provision()
    calendar = int(folders(dev)["8"][0])
    key = dev.sync(calendar, "0").sync_key or ""
    series = E(
        A,
        "Add",
        E(A, "ClientId", text="weekly-1"),
        E(
            A,
            "ApplicationData",
            E(CAL, "Subject", text="Weekly review"),
            E(CAL, "StartTime", text="20261203T090000Z"),
            E(CAL, "EndTime", text="20261203T100000Z"),
            E(
                CAL,
                "Recurrence",
                E(CAL, "Type", text=1),
                E(CAL, "Interval", text=1),
                E(CAL, "DayOfWeek", text=16),
                E(CAL, "Occurrences", text=6),
            ),
            E(CAL, "ClientUid", text="weekly-review-1"),
        ),
    )
    answer = dev.sync(calendar, key, commands=[series])
    (response,) = answer.responses()
    assert child_text(response, "Status") == "1"
    server_id = child_text(response, "ServerId") or ""
    key = answer.sync_key or ""

    moved = E(
        A,
        "Change",
        E(A, "ServerId", text=server_id),
        E(B, "InstanceId", text="20261210T090000Z"),
        E(
            A,
            "ApplicationData",
            E(CAL, "Subject", text="Weekly review (moved)"),
            E(CAL, "StartTime", text="20261210T140000Z"),
            E(CAL, "EndTime", text="20261210T150000Z"),
        ),
    )
    gone = E(
        A,
        "Delete",
        E(A, "ServerId", text=server_id),
        E(B, "InstanceId", text="20261217T090000Z"),
    )
    answer = dev.sync(calendar, key, commands=[moved, gone])
    assert answer.responses() == []  # both applied
    key = answer.sync_key or ""

    item_id = server_id.split(":", 1)[1]
    status, body = dav(radicale, fresh_dav_user, "GET", f"/{fresh_dav_user}/calendar/{item_id}")
    assert status == 200
    event = parse_event(body.decode())
    assert event is not None and event.subject == "Weekly review" and event.recurrence
    by_start = {x.exception_start.strftime("%Y%m%dT%H%M%SZ"): x for x in event.exceptions}
    assert by_start["20261217T090000Z"].deleted
    changed = by_start["20261210T090000Z"]
    assert changed.subject == "Weekly review (moved)"
    assert changed.start is not None and changed.start.hour == 14

    # 16.x ghosting (MS-ASCAL 3.1.5.3): a Change of the subject alone keeps the rest.
    rename = E(A, "Change", E(A, "ServerId", text=server_id),
               E(A, "ApplicationData", E(CAL, "Subject", text="Weekly sync")))  # fmt: skip
    answer = dev.sync(calendar, key, commands=[rename])
    assert answer.responses() == []
    key = answer.sync_key or key
    _, body = dav(radicale, fresh_dav_user, "GET", f"/{fresh_dav_user}/calendar/{item_id}")
    renamed = parse_event(body.decode())
    assert renamed is not None and renamed.subject == "Weekly sync"
    assert renamed.recurrence is not None and renamed.start == event.start
    assert len(renamed.exceptions) == 2  # the occurrence edits survive too

    # An occurrence of a ServerId that does not exist: its own status, with the InstanceId.
    unknown = E(
        A, "Delete", E(A, "ServerId", text=f"{calendar}:nope.ics"),
        E(B, "InstanceId", text="20261210T090000Z"),
    )  # fmt: skip
    answer = dev.sync(calendar, key, commands=[unknown])
    (response,) = answer.responses()
    assert child_text(response, "Status") == "8"
    assert response.findtext(f"{{{B}}}InstanceId") == "20261210T090000Z"
