-- 003: hybrid mode. What compare mode found, and what the rollout/rollback manager did.

-- One row per venue per compared window: the safe source (a) against the candidate (b).
-- missing = trade ids a has and b lacks, extra = the reverse, mismatched = same id, other values.
CREATE TABLE IF NOT EXISTS {{prefix}}shadow_compare (
    ts TIMESTAMP,
    symbol SYMBOL CAPACITY 4096 CACHE,
    exchange_market SYMBOL CAPACITY 64 CACHE,
    source_a SYMBOL CAPACITY 4 CACHE,
    source_b SYMBOL CAPACITY 4 CACHE,
    window_start TIMESTAMP_NS,
    window_end TIMESTAMP_NS,
    rows_a LONG,
    rows_b LONG,
    missing LONG,
    extra LONG,
    mismatched LONG,
    sample_ids VARCHAR,
    latency_a_ms DOUBLE,
    latency_b_ms DOUBLE
) TIMESTAMP(ts) PARTITION BY DAY TTL {{ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(ts, symbol, exchange_market);

-- Phase changes: operator commands, automatic rollbacks (with the measured values) and advances.
CREATE TABLE IF NOT EXISTS {{prefix}}rollout_events (
    ts TIMESTAMP,
    action SYMBOL CAPACITY 8 CACHE,
    from_phase INT,
    to_phase INT,
    reason VARCHAR,
    error_rate DOUBLE,
    mean_latency_ms DOUBLE,
    disk_usage DOUBLE,
    spool_growth_bytes LONG
) TIMESTAMP(ts) PARTITION BY DAY TTL {{ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(ts, action);
