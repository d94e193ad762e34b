"""What opush stores, and the two interfaces every storage backend implements.

opush keeps only *state*: which devices exist and what each of them has already seen. The
interfaces are shaped for Cassandra (``storage/cassandra.py``), the most constrained backend:

- every operation is a keyed read or write inside ONE partition, either *user+device* or
  *user+device+collection* (no multi-partition transactions, no scans; the console's "all
  devices" list reads one small index partition);
- values are small records, serialized as JSON (see ``opush.storage.codec``);
- every row expires :data:`STATE_TTL` (30 days) after its last write ("touch") unless said
  otherwise below; the embedded SQLite store emulates this with an expiry column, filtered on
  read and purged periodically.

All methods return Deferreds (``await`` them from ``async def`` code). Missing things are
``None``/``False``; only broken storage raises (:class:`StorageError`), plus
:class:`DeviceNotFound` when a method changes a device that is not registered.

Identifiers: ``user`` is the login as authenticated (``alice@example.org``; callers normalise
case), ``device_id`` the EAS DeviceId as sent. Collection ids are small integers >= 1, unique and
stable per user+device; :data:`HIERARCHY` (0) names the folder hierarchy itself, so FolderSync
state uses the same sync-state methods as Sync state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import attrs
from twisted.internet.defer import Deferred

#: Rows expire this long after their last write (Java Opush: Cassandra default_time_to_live
#: 2592000, OP-84).
STATE_TTL: Final = timedelta(days=30)

#: The pseudo collection id under which FolderSync (hierarchy) sync state is kept; real
#: collection ids start at 1.
HIERARCHY: Final = 0

#: A JSON object: what the sync engine keeps in a snapshot. Must survive
#: ``json.loads(json.dumps(v))`` unchanged (str keys; str/int/float/bool/None/list/dict
#: values; encode bytes as base64 yourself).
Json = Mapping[str, Any]


class StorageError(Exception):
    """The state store failed (unreachable, timeout, corrupt row). Maps to an EAS server error."""


class DeviceNotFound(StorageError):
    """A method that changes a device was called for a device that is not registered."""

    def __init__(self, user: str, device_id: str) -> None:
        super().__init__(f"no device {device_id!r} registered for {user!r}")
        self.user = user
        self.device_id = device_id


# --------------------------------------------------------------------------------------- devices


class WipeState(enum.Enum):
    """Remote wipe of a device (MS-ASPROV RemoteWipe / AccountOnlyRemoteWipe)."""

    NONE = "none"
    WIPE_PENDING = "wipe-pending"
    ACCOUNT_ONLY_WIPE_PENDING = "account-only-wipe-pending"
    WIPED = "wiped"  # the device acknowledged the wipe
    ACCOUNT_ONLY_WIPED = "account-only-wiped"


class Permission(enum.Enum):
    """Per-device decision of an administrator; ``None`` on a device means "use sync_perms.ini"."""

    ALLOWED = "allowed"
    BLOCKED = "blocked"


class ProvisioningState(enum.Enum):
    NONE = "none"  # no policy key ever issued
    PENDING = "pending"  # a temporary key was issued, the device has not acknowledged it yet
    PROVISIONED = "provisioned"  # the device holds a valid policy key


@attrs.frozen
class DeviceInformation:
    """Settings DeviceInformation (MS-ASCMD 2.2.3.48), as last sent by the device."""

    model: str | None = None
    imei: str | None = None
    friendly_name: str | None = None
    os: str | None = None
    os_language: str | None = None
    phone_number: str | None = None
    mobile_operator: str | None = None
    user_agent: str | None = None


@attrs.frozen
class Device:
    """One device of one user. Times are timezone-aware UTC datetimes."""

    user: str
    device_id: str
    device_type: str
    user_agent: str | None
    first_seen: datetime
    last_seen: datetime
    protocol_version: str | None = None
    information: DeviceInformation = DeviceInformation()
    #: The key the device must send in X-MS-PolicyKey (None until provisioned).
    policy_key: int | None = None
    #: A key issued in the first Provision round trip, awaiting the device's acknowledgement.
    pending_policy_key: int | None = None
    wipe: WipeState = WipeState.NONE
    wipe_requested_by: str | None = None
    wipe_requested_at: datetime | None = None
    wipe_acknowledged_at: datetime | None = None
    permission: Permission | None = None

    @property
    def provisioning(self) -> ProvisioningState:
        if self.pending_policy_key is not None:
            return ProvisioningState.PENDING
        if self.policy_key is not None:
            return ProvisioningState.PROVISIONED
        return ProvisioningState.NONE


def never_expires(device: Device) -> bool:
    """A pending wipe or a block keeps the device record forever (see DeviceRegistry)."""
    return device.permission is Permission.BLOCKED or device.wipe in (
        WipeState.WIPE_PENDING,
        WipeState.ACCOUNT_ONLY_WIPE_PENDING,
    )


def wipe_acknowledged(device: Device, at: datetime) -> Device:
    """The device confirmed a pending wipe (a no-op for a device with no wipe pending)."""
    done = {
        WipeState.WIPE_PENDING: WipeState.WIPED,
        WipeState.ACCOUNT_ONLY_WIPE_PENDING: WipeState.ACCOUNT_ONLY_WIPED,
    }.get(device.wipe)
    if done is None:
        return device
    return attrs.evolve(device, wipe=done, wipe_acknowledged_at=at)


class DeviceRegistry(Protocol):
    """Devices, their policy keys, wipe requests and permissions.

    Device records expire 30 days after the last request of the device, EXCEPT while a wipe is
    pending or the device is blocked: an administrator's decision must not evaporate because
    the phone stayed off. (In the obm profile a PostgreSQL implementation of this interface
    uses OBM's tables instead, without expiry.)
    """

    def get_device(self, user: str, device_id: str) -> Deferred[Device | None]: ...

    def touch_device(
        self,
        user: str,
        device_id: str,
        *,
        device_type: str,
        user_agent: str | None,
        protocol_version: str | None,
    ) -> Deferred[Device]:
        """Register the device if new, else update its type/agent/version and last_seen."""
        ...

    def update_device_information(
        self, user: str, device_id: str, information: DeviceInformation
    ) -> Deferred[Device]:
        """Replace the DeviceInformation fields (Settings command). Raises DeviceNotFound."""
        ...

    def list_devices(self, user: str | None = None) -> Deferred[list[Device]]:
        """The user's devices, or every device of every user when ``user`` is None (console).

        Sorted by (user, device_id).
        """
        ...

    def set_policy_keys(
        self, user: str, device_id: str, *, policy_key: int | None, pending_policy_key: int | None
    ) -> Deferred[Device]:
        """Record the two-step Provision: issue (pending), acknowledge (valid), reset (None, None).

        Raises DeviceNotFound.
        """
        ...

    def request_wipe(
        self, user: str, device_id: str, *, requested_by: str, account_only: bool = False
    ) -> Deferred[Device]:
        """Mark a (account-only) wipe pending; the next request of the device gets it.

        Raises DeviceNotFound.
        """
        ...

    def cancel_wipe(self, user: str, device_id: str) -> Deferred[Device]:
        """Back to WipeState.NONE (clears requested_by/at and ack time). Raises DeviceNotFound."""
        ...

    def acknowledge_wipe(self, user: str, device_id: str) -> Deferred[Device]:
        """The device reported the wipe done: WIPED / ACCOUNT_ONLY_WIPED with the ack time.

        Raises DeviceNotFound.
        """
        ...

    def set_permission(
        self, user: str, device_id: str, permission: Permission | None
    ) -> Deferred[Device]:
        """Allow/block this device explicitly, or None to follow sync_perms.ini.

        Raises DeviceNotFound.
        """
        ...

    def remove_device(self, user: str, device_id: str) -> Deferred[bool]:
        """Forget the device record (True if it existed). Does NOT touch sync state: use
        :func:`remove_device_everywhere`, which also calls ``StateStore.forget_device``."""
        ...

    def close(self) -> Deferred[None]: ...


# ------------------------------------------------------------------------------------ sync state


#: Largest collection id a store holds (Cassandra ``int``); devices may send anything in a
#: CollectionId, and a number beyond it names no collection (never an overflow error).
MAX_COLLECTION_ID = 2**31 - 1


def valid_collection_id(collection_id: int) -> bool:
    return 0 <= collection_id <= MAX_COLLECTION_ID


class FolderKind(enum.Enum):
    """Which backend a collection lives in."""

    MAIL = "mail"
    CALENDAR = "calendar"
    CONTACTS = "contacts"
    TASKS = "tasks"


@attrs.frozen
class FolderRef:
    """What a collection id stands for in the backend.

    ``backend_id`` identifies the folder in its backend (IMAP mailbox path, obm-sync calendar
    id, CalDAV collection URL...). (kind, backend_id) is unique per user+device.
    ``folder_type`` is the EAS FolderHierarchy Type (MS-ASCMD 2.2.3.186.3, 1..19).
    """

    kind: FolderKind
    backend_id: str
    display_name: str
    folder_type: int
    parent_backend_id: str | None = None


@attrs.frozen
class Collection:
    collection_id: int
    ref: FolderRef


@attrs.frozen
class SyncState:
    """An immutable snapshot named by a sync key.

    ``data`` is the engine's own record (IMAP uidvalidity/highestmodseq/uids, pending window,
    remembered Options, FilterType...; for HIERARCHY the folders the device knows).
    ``parent_key`` is the key the device sent in the request that produced this state and
    ``response`` what was answered to it (WBXML bytes), so that a retried request carrying
    ``parent_key`` can be answered identically.
    """

    sync_key: str
    data: Json
    parent_key: str | None = None
    response: bytes | None = None


class MappingKind(enum.Enum):
    """Idempotence maps (key -> value) kept per user+device+collection."""

    #: Sync Add ClientId -> ServerId (MS-ASCMD 2.2.3.29).
    CLIENT_ID = "client-id"
    #: Content hash of a contact created from this device -> ServerId (Opush OP-139).
    CONTENT_HASH = "content-hash"
    #: SendMail/SmartReply/SmartForward ClientId already sent -> "" (use collection HIERARCHY).
    SENDMAIL = "sendmail"
    #: The last complete Sync request (XML) -> reused for empty and Partial Syncs
    #: (MS-ASCMD 2.2.1.21.1, 2.2.3.131); key "last", collection HIERARCHY.
    SYNC_REQUEST = "sync-request"
    #: Flag details devices set on mail, per user (device "*", collection 0): folder name
    #: -> JSON (opush.backends.mailsource.FlagDetailStore).
    MAIL_FLAG = "mail-flag"


@attrs.frozen
class PingFolder:
    collection_id: int
    folder_class: str  # Email, Calendar, Contacts, Tasks (MS-ASCMD 2.2.3.27.2)


@attrs.frozen
class PingParameters:
    """What the last Ping carried; a Ping without body reuses it (MS-ASCMD 2.2.3.80)."""

    heartbeat_interval: int
    folders: tuple[PingFolder, ...]


class StateStore(Protocol):
    """Sync state of devices: collection ids, sync keys and snapshots, idempotence maps, Ping."""

    # -- collection ids (partition user+device) --

    def allocate_collection(self, user: str, device_id: str, ref: FolderRef) -> Deferred[int]:
        """The collection id of (ref.kind, ref.backend_id), allocating the next free one if new.

        Idempotent; an existing mapping keeps its id and is NOT updated (use update_collection)
        but is touched, so FolderSync keeps every folder it reports alive.
        """
        ...

    def get_collection(
        self, user: str, device_id: str, collection_id: int
    ) -> Deferred[Collection | None]: ...

    def find_collection(
        self, user: str, device_id: str, kind: FolderKind, backend_id: str
    ) -> Deferred[Collection | None]:
        """The collection mapped to (kind, backend_id); the lowest id if update_collection
        made two ids point at the same folder."""
        ...

    def list_collections(self, user: str, device_id: str) -> Deferred[list[Collection]]:
        """Every collection of the device, sorted by id."""
        ...

    def update_collection(
        self, user: str, device_id: str, collection_id: int, ref: FolderRef
    ) -> Deferred[bool]:
        """Point an existing id at a changed folder (rename/move keeps the id). False if absent."""
        ...

    def delete_collection(self, user: str, device_id: str, collection_id: int) -> Deferred[None]:
        """Drop the mapping and the collection's sync state and idempotence maps."""
        ...

    # -- sync keys (partition user+device+collection; HIERARCHY for FolderSync) --

    def get_sync_state(
        self, user: str, device_id: str, collection_id: int, sync_key: str
    ) -> Deferred[SyncState | None]:
        """The state named by ``sync_key`` if it is the current or the previous one."""
        ...

    def current_sync_state(
        self, user: str, device_id: str, collection_id: int
    ) -> Deferred[SyncState | None]:
        """The newest state (Ping, GetItemEstimate, retry detection)."""
        ...

    def put_sync_state(
        self, user: str, device_id: str, collection_id: int, state: SyncState
    ) -> Deferred[None]:
        """Make ``state`` current. The state named ``state.parent_key`` (if still kept) becomes
        the previous one and is touched; any other state of the collection is dropped, so
        ``parent_key=None`` (SyncKey 0) resets the collection. Also touches the collection's
        mapping row so that a collection in use never loses its id.
        """
        ...

    # -- idempotence maps (partition user+device+collection) --

    def get_mapping(
        self, user: str, device_id: str, collection_id: int, kind: MappingKind, key: str
    ) -> Deferred[str | None]: ...

    def put_mapping(
        self,
        user: str,
        device_id: str,
        collection_id: int,
        kind: MappingKind,
        key: str,
        value: str,
    ) -> Deferred[None]: ...

    # -- Ping (partition user+device) --

    def get_ping(self, user: str, device_id: str) -> Deferred[PingParameters | None]: ...

    def put_ping(self, user: str, device_id: str, params: PingParameters) -> Deferred[None]: ...

    # -- whole device --

    def forget_device(self, user: str, device_id: str) -> Deferred[None]:
        """Drop every collection, sync state, map and Ping parameters of the device."""
        ...

    def close(self) -> Deferred[None]: ...


async def remove_device_everywhere(
    registry: DeviceRegistry, store: StateStore, user: str, device_id: str
) -> bool:
    """Console "remove device": the sync state first, so a half-done removal can be rerun."""
    await store.forget_device(user, device_id)
    return await registry.remove_device(user, device_id)


# --------------------------------------------------------------------------------------- schema


@attrs.frozen
class SchemaVersion:
    version: int
    updated: datetime


class SchemaStore(Protocol):
    """What the schema lifecycle (``opush.storage.schema``) needs from a backend."""

    def installed_versions(self) -> Deferred[list[SchemaVersion] | None]:
        """Recorded versions, newest first; None when the version table does not exist."""
        ...

    def apply_script(self, version: int, name: str, script: str) -> Deferred[None]:
        """Run one numbered schema file (statements separated by ';'); must be idempotent
        (CREATE ... IF NOT EXISTS) so an interrupted install/update can be rerun."""
        ...

    def record_version(self, version: int, updated: datetime) -> Deferred[None]: ...
