-- opush embedded state store, schema version 1 (SQLite).
-- Every statement is idempotent (IF NOT EXISTS): an interrupted install/update can be rerun.
-- Values are JSON text as written by opush/storage/codec.py. "expires" is the expiry time in
-- seconds since the epoch (NULL = never); readers ignore expired rows, a purge deletes them.

CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    updated TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS device (
    user TEXT NOT NULL,
    device_id TEXT NOT NULL,
    record TEXT NOT NULL,
    expires REAL,
    PRIMARY KEY (user, device_id)
);

CREATE TABLE IF NOT EXISTS collection (
    user TEXT NOT NULL,
    device_id TEXT NOT NULL,
    collection_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    backend_id TEXT NOT NULL,
    record TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (user, device_id, collection_id)
);

CREATE INDEX IF NOT EXISTS collection_by_backend_id
    ON collection (user, device_id, kind, backend_id);

CREATE TABLE IF NOT EXISTS sync_state (
    user TEXT NOT NULL,
    device_id TEXT NOT NULL,
    collection_id INTEGER NOT NULL,
    sync_key TEXT NOT NULL,
    parent_key TEXT,
    data TEXT NOT NULL,
    response BLOB,
    current INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (user, device_id, collection_id, sync_key)
);

CREATE TABLE IF NOT EXISTS id_mapping (
    user TEXT NOT NULL,
    device_id TEXT NOT NULL,
    collection_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (user, device_id, collection_id, kind, key)
);

CREATE TABLE IF NOT EXISTS ping (
    user TEXT NOT NULL,
    device_id TEXT NOT NULL,
    record TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (user, device_id)
);
