"""errors.classify: every failure becomes the right HTTP code or EAS Status."""

from __future__ import annotations

import pytest
from lxml import etree

from opush.backends.interfaces import AuthenticationFailed, MailBackendUnavailable, MailError
from opush.http.errors import (
    WBXML_CONTENT_TYPE,
    EasStatusError,
    GlobalStatus,
    HttpError,
    classify,
)
from opush.http.query import QueryError
from opush.storage.interfaces import StorageError
from opush.wbxml import WbxmlError, decode

V12 = (12, 1)
V14 = (14, 1)


def status_of(body: bytes) -> tuple[str, str | None]:
    root = decode(body)
    return etree.QName(root).localname, root.findtext(f"{{{etree.QName(root).namespace}}}Status")


@pytest.mark.parametrize(
    "exc, version, code",
    [
        (QueryError("x"), V14, 400),
        (HttpError(503, "busy", {"Retry-After": "5"}), V14, 503),
        (AuthenticationFailed("no"), V14, 401),
        (EasStatusError(GlobalStatus.DEVICE_NOT_PROVISIONED), V12, 449),
        (EasStatusError(GlobalStatus.INVALID_POLICY_KEY), V12, 449),
        (EasStatusError(GlobalStatus.REMOTE_WIPE_REQUESTED), V12, 449),
        (EasStatusError(GlobalStatus.DEVICE_IS_BLOCKED_FOR_THIS_USER), V12, 403),
        (EasStatusError(GlobalStatus.COMMAND_NOT_SUPPORTED), V12, 501),
        (WbxmlError("bad"), V12, 400),
        (MailBackendUnavailable("down"), V12, 503),
        (StorageError("sqlite locked"), V12, 503),
        (ZeroDivisionError(), V14, 500),
    ],
)
def test_http_codes(exc: Exception, version: tuple[int, int], code: int) -> None:
    out = classify(exc, "FolderSync", version)
    assert out.code == code
    if code == 401:
        assert out.headers["WWW-Authenticate"].startswith("Basic realm=")
    if code == 503:
        assert "Retry-After" in out.headers
    assert out.traceback == (code == 500)


@pytest.mark.parametrize(
    "exc, status",
    [
        (EasStatusError(GlobalStatus.DEVICE_NOT_PROVISIONED), "142"),
        (EasStatusError(9), "9"),
        (WbxmlError("bad"), "102"),
        (etree.XMLSyntaxError("bad", 1, 1, 1), "103"),
        (MailBackendUnavailable("down"), "111"),
        (MailError("NO"), "110"),
    ],
)
def test_statuses_in_the_commands_body_from_14(exc: Exception, status: str) -> None:
    out = classify(exc, "FolderSync", V14)
    assert out.code == 200 and out.headers["Content-Type"] == WBXML_CONTENT_TYPE
    assert status_of(out.body) == ("FolderSync", status)


def test_command_status_before_14_is_in_the_body_too() -> None:
    out = classify(EasStatusError(3, command="Sync"), "Sync", V12)
    assert out.code == 200 and status_of(out.body) == ("Sync", "3")


def test_command_without_wbxml_response_falls_back_to_http() -> None:
    assert classify(EasStatusError(GlobalStatus.ITEM_NOT_FOUND), "GetAttachment", V14).code == 400
