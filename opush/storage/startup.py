"""The schema check at start (administrator guide §8): serve devices, or the console only.

Device traffic is refused (``runtime.services["refuse_devices"]``, answered 503 by
``opush.http.activesync``) while the schema is missing, too old or unreadable; the CONTAINER
log says why with the guide's texts. A brand-new embedded file is installed at once: it holds
no data yet, and the default profile should work without a console session. A Cassandra
keyspace is only ever installed or updated by ``schema install|update``.
"""

from __future__ import annotations

from typing import Any

from opush.log import logger
from opush.storage import migration

log = logger("CONTAINER")

REFUSE_DEVICES = "refuse_devices"


def backend_name(config: Any) -> str:
    """``"embedded"`` or ``"cassandra"``: the schema directory of the configured storage."""
    return str(config.opush.storage.value)


async def check_schema_at_startup(
    runtime: Any, config: Any, *, install_embedded: bool = True
) -> migration.StatusSummary:
    name = backend_name(config)
    schema = migration.load_schema(name)
    store = runtime.state
    # Devices wait (503) until the schema is known to be usable: a request racing the check
    # must not reach a store without tables.
    runtime.services[REFUSE_DEVICES] = "state store schema not checked yet"
    summary = await migration.get_status(store, schema)
    if (
        name == "embedded"
        and install_embedded
        and summary.status is migration.SchemaStatus.NOT_INITIALIZED
    ):
        result = await migration.install(store, schema)
        if result.success:
            log.info("Embedded schema version {version} installed", version=schema.latest)
        else:
            log.error("{message}", message=result.message)
        summary = await migration.get_status(store, schema)
    store_name = "Cassandra" if name == "cassandra" else "Embedded"
    message = migration.startup_message(summary, store_name)
    if message is not None:
        level, text = message
        log.emit(level, "{text}", text=text)
    if summary.serves_devices:
        runtime.services.pop(REFUSE_DEVICES, None)
        purge = getattr(store, "purge_periodically", None)
        if purge is not None:  # the embedded store emulates Cassandra's TTL
            purge()
    else:
        runtime.services[REFUSE_DEVICES] = message[1] if message else "state store unavailable"
    return summary
