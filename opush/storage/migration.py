"""Schema lifecycle: numbered schema files, status, ``install`` and ``update``.

Schema files live in ``opush/storage/schema/<backend>/NNN_name.(sql|cql)``; NNN is the schema
version the file belongs to (several files may share a version; they run in name order).
Every statement must be idempotent (``CREATE ... IF NOT EXISTS``) and each version is recorded
right after its files ran, so an interrupted install/update can simply be run again.

Status follows the Java server (``CassandraMigrationService.getStatus``): no version table ->
NOT_INITIALIZED; table without version -> UPGRADE_REQUIRED; version >= latest -> UP_TO_DATE;
< minimal -> UPGRADE_REQUIRED; else UPGRADE_AVAILABLE; any failure -> EXECUTION_ERROR. The
``*_text`` functions return the console's exact messages (``schema.groovy``), and
:func:`startup_message` the CONTAINER log line of a start (administrator guide §8).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Final

import attrs
from twisted.logger import LogLevel

from opush.log import logger
from opush.storage.interfaces import SchemaStore, SchemaVersion

log = logger("MIGRATION")

_FILE_NAME: Final = re.compile(r"^(\d{3})_[A-Za-z0-9_]+\.(sql|cql)$")


@attrs.frozen
class SchemaFile:
    version: int
    name: str
    text: str


@attrs.frozen
class SchemaSet:
    """The schema files a backend ships, and which installed versions this code can use."""

    backend: str
    files: tuple[SchemaFile, ...]
    latest: int
    minimal: int

    def files_between(self, after: int, upto: int) -> list[SchemaFile]:
        return [f for f in self.files if after < f.version <= upto]


def load_schema(backend: str, minimal: int | None = None) -> SchemaSet:
    """Read ``schema/<backend>/`` from the installed package.

    ``minimal`` (oldest installed version this code works with) defaults to ``latest``, as in
    the Java server where both were 6: any new version is then a required update.
    """
    folder = resources.files("opush.storage").joinpath("schema", backend)
    files = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            files.append(SchemaFile(int(match[1]), entry.name, entry.read_text("utf-8")))
    if not files:
        raise ValueError(f"no schema files for backend {backend!r}")
    files.sort(key=lambda f: (f.version, f.name))
    latest = files[-1].version
    return SchemaSet(backend, tuple(files), latest, latest if minimal is None else minimal)


class SchemaStatus(enum.Enum):
    NOT_INITIALIZED = "NOT_INITIALIZED"
    UP_TO_DATE = "UP_TO_DATE"
    UPGRADE_AVAILABLE = "UPGRADE_AVAILABLE"
    UPGRADE_REQUIRED = "UPGRADE_REQUIRED"
    EXECUTION_ERROR = "EXECUTION_ERROR"


@attrs.frozen
class StatusSummary:
    status: SchemaStatus
    latest: int
    current: SchemaVersion | None = None
    message: str | None = None

    @property
    def serves_devices(self) -> bool:
        """Whether device traffic may be served (else: administration console only)."""
        return self.status in (SchemaStatus.UP_TO_DATE, SchemaStatus.UPGRADE_AVAILABLE)


@attrs.frozen
class MigrationResult:
    success: bool
    message: str


def _message(error: BaseException) -> str:
    return str(error) or type(error).__name__


async def get_status(store: SchemaStore, schema: SchemaSet) -> StatusSummary:
    try:
        versions = await store.installed_versions()
    except Exception as e:
        return StatusSummary(SchemaStatus.EXECUTION_ERROR, schema.latest, message=_message(e))
    if versions is None:
        return StatusSummary(SchemaStatus.NOT_INITIALIZED, schema.latest)
    if not versions:
        return StatusSummary(SchemaStatus.UPGRADE_REQUIRED, schema.latest)
    current = max(versions, key=lambda v: v.version)
    if current.version >= schema.latest:
        status = SchemaStatus.UP_TO_DATE
    elif current.version < schema.minimal:
        status = SchemaStatus.UPGRADE_REQUIRED
    else:
        status = SchemaStatus.UPGRADE_AVAILABLE
    return StatusSummary(status, schema.latest, current)


Now = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _apply(store: SchemaStore, schema: SchemaSet, after: int, now: Now) -> None:
    """Run the files of every version in (after, latest], recording each version when done."""
    files = schema.files_between(after, schema.latest)
    for version in sorted({f.version for f in files}):
        for f in files:
            if f.version == version:
                log.info(
                    "Applying {backend} schema file {name} (version {version})",
                    backend=schema.backend,
                    name=f.name,
                    version=version,
                )
                await store.apply_script(version, f.name, f.text)
        await store.record_version(version, now())
        log.info(
            "{backend} schema is now at version {version}", backend=schema.backend, version=version
        )


async def install(store: SchemaStore, schema: SchemaSet, now: Now = _utcnow) -> MigrationResult:
    """Create the schema from scratch (caller checked NOT_INITIALIZED)."""
    try:
        await _apply(store, schema, 0, now)
    except Exception as e:
        log.failure("Schema installation failed")
        return MigrationResult(
            False, f"An error occurred when installing the schema: {_message(e)}"
        )
    return MigrationResult(
        True,
        f"Schema version {schema.latest} has been installed, "
        "please restart opush to get the service up",
    )


async def update(store: SchemaStore, schema: SchemaSet, now: Now = _utcnow) -> MigrationResult:
    """Bring an installed schema to the latest version.

    Unlike the Java server, a version table without any version (an install interrupted before
    its first version was recorded) is completed from the start rather than reported as an
    error.
    """
    try:
        versions = await store.installed_versions()
        current = max((v.version for v in versions or []), default=None)
        if current == schema.latest:
            return MigrationResult(
                True, "Nothing to do, your schema is already at the latest version"
            )
        if current is not None and current > schema.latest:
            return MigrationResult(
                False, f"Version {current} conflicts with latest version {schema.latest}"
            )
        await _apply(store, schema, current or 0, now)
    except Exception as e:
        log.failure("Schema update failed")
        return MigrationResult(False, f"An error occurred when updating the schema: {_message(e)}")
    text = f"Your schema has been updated from version {current} to {schema.latest}"
    if current is None or current < schema.minimal:
        text += ", please restart opush to get the service up"
    return MigrationResult(True, text)


# ----------------------------------------------------------------------------- console texts


def _java_date(when: datetime) -> str:
    """java.util.Date.toString() in the server's time zone: ``Wed Mar 26 16:25:53 GMT 2014``."""
    local = when.astimezone()
    return local.strftime("%a %b %d %H:%M:%S ") + (local.tzname() or "UTC") + local.strftime(" %Y")


def _inline(version: SchemaVersion | None) -> str:
    if version is None:
        return "None"
    return f"{version.version} updated the {_java_date(version.updated)}"


def status_text(summary: StatusSummary) -> str:
    """Output of the console's ``schema status``."""
    s = summary.status
    if s is SchemaStatus.EXECUTION_ERROR:
        return f"ERROR: {summary.message}"
    if s is SchemaStatus.UP_TO_DATE:
        return f"OK\nYour schema is already at the latest version: {_inline(summary.current)}"
    if s is SchemaStatus.UPGRADE_AVAILABLE:
        return (
            "WARN: Update advised\n"
            "This opush server IS compatible with the current schema but an update is available\n"
            f"Current: {_inline(summary.current)}\n"
            f"Latest : {summary.latest}"
        )
    if s is SchemaStatus.UPGRADE_REQUIRED:
        return (
            "WARN: Update required\n"
            "This opush server IS NOT compatible with the current schema, please update it\n"
            f"Current: {_inline(summary.current)}\n"
            f"Latest : {summary.latest}"
        )
    return (
        "WARN: Install required\n"
        'No schema found, you can create it using the "install" command\n'
        f"The latest schema version available is {summary.latest}"
    )


async def status_command(store: SchemaStore, schema: SchemaSet) -> str:
    return status_text(await get_status(store, schema))


async def install_command(store: SchemaStore, schema: SchemaSet, now: Now = _utcnow) -> str:
    """Output of the console's ``schema install``."""
    summary = await get_status(store, schema)
    if summary.status is SchemaStatus.NOT_INITIALIZED:
        return (await install(store, schema, now)).message
    if summary.status is SchemaStatus.EXECUTION_ERROR:
        return f"ERROR: {summary.message}"
    return (
        'The schema is already installed, use the "status" command to know if an update '
        "is available"
    )


async def update_command(store: SchemaStore, schema: SchemaSet, now: Now = _utcnow) -> str:
    """Output of the console's ``schema update``."""
    summary = await get_status(store, schema)
    if summary.status is SchemaStatus.EXECUTION_ERROR:
        return f"ERROR: {summary.message}"
    if summary.status is SchemaStatus.UP_TO_DATE:
        return "Nothing to do, your schema is already at the latest version"
    if summary.status is SchemaStatus.NOT_INITIALIZED:
        return (
            'Your schema is not initialized, use the "status" command to know if you have '
            "something to do"
        )
    return (await update(store, schema, now)).message


def startup_message(
    summary: StatusSummary, store_name: str = "Cassandra"
) -> tuple[LogLevel, str] | None:
    """The CONTAINER log line at start (guide §8), or None when the schema is up to date."""
    s = summary.status
    if s is SchemaStatus.UP_TO_DATE:
        return None
    if s is SchemaStatus.UPGRADE_AVAILABLE:
        return LogLevel.warn, f"{store_name} schema not up-to-date, update is recommended"
    if s is SchemaStatus.NOT_INITIALIZED:
        what = f"{store_name} schema not installed"
    elif s is SchemaStatus.UPGRADE_REQUIRED:
        what = f"{store_name} schema too old"
    else:
        what = summary.message or "Schema status unknown"
    return LogLevel.error, f"{what}, starting administration services only"
