-- OBM's own DDL for the tables opush reads and writes (PostgreSQL), after
-- ui/scripts/creation/create_obmdb.pgsql.sql as summarised in research/obm-sync.md §5.
-- userobm keeps only the columns opush and these tests use.
CREATE TABLE domain (
    domain_id          SERIAL PRIMARY KEY,
    domain_timeupdate  TIMESTAMP,
    domain_timecreate  TIMESTAMP DEFAULT now(),
    domain_label       VARCHAR(32) NOT NULL,
    domain_name        VARCHAR(128),
    domain_global      BOOLEAN DEFAULT FALSE,
    domain_uuid        CHAR(36) NOT NULL
);

CREATE TABLE userobm (
    userobm_id         SERIAL PRIMARY KEY,
    userobm_domain_id  INTEGER NOT NULL REFERENCES domain(domain_id) ON DELETE CASCADE,
    userobm_timecreate TIMESTAMP DEFAULT now(),
    userobm_archive    SMALLINT DEFAULT 0 NOT NULL,
    userobm_login      VARCHAR(80) DEFAULT '' NOT NULL,
    userobm_password   VARCHAR(64) DEFAULT '' NOT NULL,
    userobm_hidden     INTEGER DEFAULT 0,
    userobm_lastname   VARCHAR(64) DEFAULT '',
    userobm_firstname  VARCHAR(64) DEFAULT '',
    userobm_email      TEXT DEFAULT ''
);

CREATE TABLE opush_device (
    id          SERIAL PRIMARY KEY,
    identifier  VARCHAR(255) NOT NULL,
    owner       INTEGER REFERENCES userobm(userobm_id) ON DELETE CASCADE,
    type        VARCHAR(64) NOT NULL
);

CREATE TABLE opush_sec_policy (
    id                       SERIAL PRIMARY KEY,
    device_password_enabled  BOOLEAN DEFAULT FALSE
);

CREATE TABLE opush_sync_perms (
    owner           INTEGER REFERENCES userobm(userobm_id) ON DELETE CASCADE,
    device_id       INTEGER NOT NULL REFERENCES opush_device(id) ON DELETE CASCADE,
    policy          INTEGER REFERENCES opush_sec_policy(id) ON DELETE CASCADE,
    pending_accept  BOOLEAN NOT NULL
);

CREATE TABLE opush_folder_mapping (
    id          SERIAL PRIMARY KEY,
    device_id   INTEGER NOT NULL REFERENCES opush_device(id) ON DELETE CASCADE,
    collection  VARCHAR(255) NOT NULL
);

-- The O3 3.1.0 migration dropped the collection_id foreign key.
CREATE TABLE opush_sync_state (
    id             SERIAL PRIMARY KEY,
    sync_key       VARCHAR(64) UNIQUE NOT NULL,
    collection_id  INTEGER NOT NULL,
    device_id      INTEGER NOT NULL REFERENCES opush_device(id) ON DELETE CASCADE,
    last_sync      TIMESTAMP NOT NULL
);
CREATE INDEX opush_sync_state_device_id_collection_id_idx ON opush_sync_state (device_id, collection_id);

CREATE TABLE opush_synced_item (
    id             SERIAL PRIMARY KEY,
    sync_state_id  INTEGER NOT NULL REFERENCES opush_sync_state(id) ON DELETE CASCADE,
    item_id        INTEGER NOT NULL,
    addition       BOOLEAN NOT NULL
);
CREATE INDEX opush_synced_item_sync_state_id_idx ON opush_synced_item (sync_state_id);
CREATE INDEX opush_synced_item_item_id_idx ON opush_synced_item (item_id);

CREATE TABLE opush_folder_sync_state (
    id         SERIAL PRIMARY KEY,
    sync_key   VARCHAR(64) UNIQUE NOT NULL,
    device_id  INTEGER NOT NULL REFERENCES opush_device(id) ON DELETE CASCADE
);

CREATE TABLE opush_folder_snapshot (
    id                    SERIAL PRIMARY KEY,
    folder_sync_state_id  INTEGER NOT NULL REFERENCES opush_folder_sync_state(id) ON DELETE CASCADE,
    collection_id         INTEGER NOT NULL REFERENCES opush_folder_mapping(id) ON DELETE CASCADE
);

CREATE TYPE pimdata_type AS ENUM ('EMAIL', 'CALENDAR', 'CONTACTS', 'TASKS');

CREATE TABLE opush_folder_sync_state_backend_mapping (
    id                    SERIAL PRIMARY KEY,
    data_type             pimdata_type NOT NULL,
    folder_sync_state_id  INTEGER NOT NULL REFERENCES opush_folder_sync_state(id) ON DELETE CASCADE,
    last_sync             TIMESTAMP NOT NULL
);

CREATE TABLE opush_event_mapping (
    id                 SERIAL PRIMARY KEY,
    device_id          INTEGER NOT NULL REFERENCES opush_device(id) ON DELETE CASCADE,
    event_uid          VARCHAR(300) NOT NULL,
    event_ext_id       VARCHAR(300) NOT NULL,
    event_ext_id_hash  BYTEA NOT NULL,
    UNIQUE (device_id, event_ext_id_hash)
);

CREATE TABLE opush_ping_heartbeat (
    device_id       INTEGER UNIQUE NOT NULL REFERENCES opush_device(id) ON DELETE CASCADE,
    last_heartbeat  INTEGER NOT NULL
);
