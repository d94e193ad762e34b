"""The engine's record of one collection for one device, stored as the SyncState ``data``.

Kept small and independent of folder size when nothing changes: the ids the device holds
are numeric ranges (``IdSet``), the pending window is a list of runs, the source's cursor is
whatever the source needs (for IMAP with QRESYNC: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from opush.sync.ids import IdSet
from opush.sync.pending import Pending

FORMAT = 1

#: Pending operations, in the order they are sent.
ADD = "a"
CHANGE = "c"
DELETE = "d"
SOFT_DELETE = "s"  # out of the FilterType window (MS-ASCMD 2.2.3.172 SoftDelete)


def _as_pending(value: Pending | dict[str, str]) -> Pending:
    return value if isinstance(value, Pending) else Pending(value)


@attrs.define
class CollectionState:
    """Mutable working copy of a collection's state (the stored one is never changed)."""

    #: The source's cursor; None until the first listing was made (right after SyncKey 0).
    cursor: Mapping[str, Any] | None = None
    #: Item ids the device holds.
    have: IdSet = attrs.field(factory=IdSet)
    #: Changes found but not sent yet (beyond WindowSize), id -> op, in sending order.
    pending: Pending = attrs.field(factory=Pending, converter=_as_pending)
    #: FilterType in force (None: never synced with one).
    filter_type: int | None = None
    #: Remembered Options elements (serialized XML), for requests that omit them (OP-135).
    options: list[str] | None = None
    #: Remembered Conflict (MS-ASCMD 2.2.3.34), None = server wins (the default).
    conflict: int | None = None
    item_class: str = "Email"
    #: Device id -> source id, for items whose backend id changed under a client Change
    #: (a 16.x draft is replaced in IMAP: new UID) while the device keeps its ServerId.
    aliases: dict[str, str] = attrs.field(factory=dict)
    #: MS-ASCMD 2.2.3.179 Supported of the initial Sync (qualified tags), None when absent.
    supported: list[str] | None = None

    def source_id(self, device_id: str) -> str:
        return self.aliases.get(device_id, device_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": FORMAT,
            "cursor": dict(self.cursor) if self.cursor is not None else None,
            "have": self.have.encode(),
            "pending": self.pending.encode(),
            "filter": self.filter_type,
            "options": self.options,
            "conflict": self.conflict,
            "class": self.item_class,
            **({"alias": dict(self.aliases)} if self.aliases else {}),
            **({"supported": list(self.supported)} if self.supported is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CollectionState:
        if data.get("v") != FORMAT:
            raise ValueError(f"unknown sync state format {data.get('v')!r}")
        return cls(
            cursor=data.get("cursor"),
            have=IdSet.decode(data.get("have")),
            pending=Pending.decode(data.get("pending") or []),
            filter_type=data.get("filter"),
            options=data.get("options"),
            conflict=data.get("conflict"),
            item_class=data.get("class") or "Email",
            aliases={str(k): str(v) for k, v in (data.get("alias") or {}).items()},
            supported=(
                [str(t) for t in data["supported"]] if data.get("supported") is not None else None
            ),
        )
