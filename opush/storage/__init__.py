"""opush's state store: devices and sync state.

``interfaces`` (records, DeviceRegistry, StateStore, SchemaStore), ``embedded`` (SQLite, the
default), ``cassandra`` (cluster), ``codec`` (the JSON form of records), ``migration`` (schema
status/install/update and the console's texts), ``schema/<backend>/NNN_*.sql|cql``.
"""
