"""What FolderSync, FolderCreate, FolderUpdate and FolderDelete share: request parsing, the
hierarchy sync key (MS-ASCMD 2.2.3.181.1-4), retries and the common statuses.

Every successful command stores a new immutable snapshot under a new key whose parent is the
key the device sent, together with the answer; the store keeps that parent valid too.  A device
that repeats its last request (same command, same body, same key: the answer was lost) gets
the stored answer again instead of a second FolderCreate or a "folder exists"; any other
request with the previous key is computed afresh from the previous snapshot.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import attrs
from lxml.etree import _Element

from opush.backends.interfaces import BackendUnavailable, MailError
from opush.commands.context import CommandContext, CommandResult
from opush.http.errors import EasStatusError
from opush.log import logger
from opush.storage.interfaces import HIERARCHY, StorageError, SyncState
from opush.sync.hierarchy import Hierarchy, Snapshot, close_sources, sources_for
from opush.wbxml import E, decode, encode, ns

log = logger("opush.commands.folders")

FH: Final = ns.FOLDERHIERARCHY

# Statuses shared by the four commands (MS-ASCMD 2.2.3.177.2-6).
SUCCESS: Final = 1
SERVER_ERROR: Final = 6  # "retry the command": the backend or the state store failed
INVALID_SYNC_KEY: Final = 9  # the device must FolderSync with SyncKey 0
MALFORMED: Final = 10
UNKNOWN_ERROR: Final = 11


def new_sync_key() -> str:
    """An opaque key naming one snapshot (SyncKey is at most 64 characters, 2.2.3.181)."""
    return str(uuid.uuid4())


def child_text(request: _Element, tag: str) -> str | None:
    el = request.find(f"{{{FH}}}{tag}")
    return None if el is None else (el.text or "")


def required(request: _Element, tag: str) -> str:
    value = child_text(request, tag)
    if value is None:
        raise EasStatusError(MALFORMED, message=f"no {tag} in the request")
    return value


def required_int(request: _Element, tag: str) -> int:
    value = required(request, tag).strip()
    if not value.isdigit():
        raise EasStatusError(MALFORMED, message=f"{tag} {value!r} is not a number")
    return int(value)


def element(tag: str, *children: _Element, text: str | int | None = None) -> _Element:
    return E(FH, tag, *children, text=text) if text is not None else E(FH, tag, *children)


@attrs.define
class Session:
    """One folder command: the hierarchy, the key the device sent and what it names."""

    ctx: CommandContext
    command: str
    hierarchy: Hierarchy
    key: str
    base: Snapshot
    current_key: str | None
    digest: str

    async def commit(self, snapshot: Snapshot, answer: Callable[[str], _Element]) -> CommandResult:
        """Store `snapshot` under a new key as the answer to this request."""
        key = new_sync_key()
        tree = answer(key)
        data = dict(snapshot.to_json())
        data["request"] = self.digest
        state = SyncState(
            sync_key=key,
            data=data,
            parent_key=None if self.key == "0" else self.key,
            response=encode(tree, self.ctx.version_text),
        )
        await self.hierarchy.state.put_sync_state(
            self.hierarchy.user, self.hierarchy.device_id, HIERARCHY, state
        )
        return CommandResult.wbxml(tree)


def _digest(ctx: CommandContext, command: str) -> str:
    return hashlib.sha256(command.encode("ascii") + b"\0" + ctx.body).hexdigest()[:32]


@asynccontextmanager
async def folder_session(
    ctx: CommandContext, request: _Element | None, command: str, *, allow_zero: bool
) -> AsyncIterator[Session | CommandResult]:
    """Parse the SyncKey and open the hierarchy; yields a `CommandResult` instead when the
    request repeats the last one (its stored answer).  Backend and storage failures become
    Status 6 ("server error, retry", MS-ASCMD 2.2.3.177.3-6), the status every folder command
    defines for them at every protocol version (rather than 111/503), and an IMAP refusal 11."""
    if request is None or request.tag != f"{{{FH}}}{command}":
        raise EasStatusError(MALFORMED, message=f"the body is not a {command} request")
    key = required(request, "SyncKey").strip()
    if not key or len(key) > 64:
        raise EasStatusError(MALFORMED, message="bad SyncKey")
    user, device_id = ctx.device.user, ctx.device.device_id
    hierarchy = Hierarchy(
        ctx.runtime.state, user, device_id, sources_for(ctx.runtime, ctx.credentials, ctx.version)
    )
    digest = _digest(ctx, command)
    try:
        current = await hierarchy.state.current_sync_state(user, device_id, HIERARCHY)
        current_key = None if current is None else current.sync_key
        if key == "0":
            if not allow_zero:
                raise EasStatusError(
                    INVALID_SYNC_KEY, message=f"{command} needs a FolderSync key, not 0"
                )
            base = Snapshot()
        else:
            if (
                current is not None
                and current.parent_key == key
                and current.response is not None
                and current.data.get("request") == digest
            ):
                log.info("{command} repeated with key {key}: same answer", command=command, key=key)
                yield CommandResult.wbxml(decode(current.response))
                return
            state = (
                current
                if current is not None and current.sync_key == key
                else await hierarchy.state.get_sync_state(user, device_id, HIERARCHY, key)
            )
            if state is None:
                raise EasStatusError(INVALID_SYNC_KEY, message=f"unknown FolderSync key {key}")
            try:
                base = Snapshot.from_json(state.data)
            except (ValueError, KeyError, TypeError) as e:
                raise EasStatusError(
                    INVALID_SYNC_KEY, message=f"unreadable hierarchy state: {e}"
                ) from e
        yield Session(ctx, command, hierarchy, key, base, current_key, digest)
    except (BackendUnavailable, StorageError) as e:
        raise EasStatusError(SERVER_ERROR, message=f"{type(e).__name__}: {e}", level="warn") from e
    except MailError as e:
        # The IMAP server refused (a name it does not accept, rights, quota): retrying will
        # not help, so not 6; every folder command defines 11 "unknown error".
        raise EasStatusError(
            UNKNOWN_ERROR, message=f"mail server refused: {e}", level="warn"
        ) from e
    finally:
        await close_sources(hierarchy.sources)
