-- 005: what the operations parts did to keep the system running: retention drops (kind
-- retention.normal / retention.emergency, one row per dropped partition), a disk still above the
-- emergency threshold once nothing more may go (retention.exhausted), refreshed views, failures;
-- and whatever else records here (backups: backup.created, ...).
-- The audit outlives the data it speaks of: a fixed year, not {{ttl_days}}, and retention never
-- drops this table's partitions.
CREATE TABLE IF NOT EXISTS {{prefix}}maintenance_events (
    ts TIMESTAMP,
    kind SYMBOL CAPACITY 64 CACHE,
    severity SYMBOL CAPACITY 4 CACHE,
    table_name SYMBOL CAPACITY 256 CACHE,
    partition_name VARCHAR,
    rows LONG,
    bytes LONG,
    disk_before_pct DOUBLE,
    disk_after_pct DOUBLE,
    disk_used_before LONG,
    disk_used_after LONG,
    message VARCHAR
) TIMESTAMP(ts) PARTITION BY MONTH TTL 12 MONTHS WAL
DEDUP UPSERT KEYS(ts, kind, table_name, partition_name);
