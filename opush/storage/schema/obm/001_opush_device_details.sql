-- opush's own additions to the OBM database (obm profile). OBM's tables are left as OBM
-- defines them (ui/scripts/creation/create_obmdb.pgsql.sql); what a DeviceRegistry needs
-- beyond them lives here, hanging off opush_device / opush_sec_policy with ON DELETE CASCADE,
-- so that obm-ui's "delete device" or user removal also removes it.
CREATE TABLE IF NOT EXISTS opush_device_details (
    device_id            INTEGER PRIMARY KEY REFERENCES opush_device(id) ON DELETE CASCADE,
    user_agent           VARCHAR(255),
    protocol_version     VARCHAR(16),
    first_seen           TIMESTAMP WITH TIME ZONE NOT NULL,
    last_seen            TIMESTAMP WITH TIME ZONE NOT NULL,
    information          TEXT,
    wipe                 VARCHAR(32) NOT NULL DEFAULT 'none',
    wipe_requested_by    VARCHAR(255),
    wipe_requested_at    TIMESTAMP WITH TIME ZONE,
    wipe_acknowledged_at TIMESTAMP WITH TIME ZONE,
    blocked              BOOLEAN NOT NULL DEFAULT FALSE
);
-- The EAS policy key a device must send, per opush_sec_policy row (OBM's serial ids are not
-- the random 32-bit keys opush hands out).
CREATE TABLE IF NOT EXISTS opush_policy_key (
    policy_id  INTEGER PRIMARY KEY REFERENCES opush_sec_policy(id) ON DELETE CASCADE,
    policy_key BIGINT NOT NULL
);
