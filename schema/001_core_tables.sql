-- 001: the three tables the ingester writes.
-- Placeholders: {{prefix}} (schema.table_prefix), {{ttl_days}} (schema.ttl_days).
-- All tables are WAL, partitioned by day, expire after the TTL and deduplicate on their
-- natural key, so any resend (retry, spool replay, worker restart, backfill rerun) is harmless.

-- Every public trade. ts is the exchange's trade time, kept to the nanosecond.
CREATE TABLE IF NOT EXISTS {{prefix}}trades (
    ts TIMESTAMP_NS,
    exchange SYMBOL CAPACITY 64 CACHE,
    market_type SYMBOL CAPACITY 8 CACHE,
    symbol SYMBOL CAPACITY 8192 CACHE,
    price DOUBLE,
    quantity DOUBLE,
    side SYMBOL CAPACITY 4 CACHE,
    trade_id VARCHAR,
    sequence_number LONG,
    recv_ts TIMESTAMP_NS
) TIMESTAMP(ts) PARTITION BY DAY TTL {{ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(ts, exchange, market_type, symbol, trade_id);

-- Connector state: a row every few seconds and on every change.
CREATE TABLE IF NOT EXISTS {{prefix}}exchange_health (
    ts TIMESTAMP,
    exchange SYMBOL CAPACITY 64 CACHE,
    market_type SYMBOL CAPACITY 8 CACHE,
    status SYMBOL CAPACITY 8 CACHE,
    last_trade_time TIMESTAMP_NS,
    message_count LONG,
    error_message VARCHAR
) TIMESTAMP(ts) PARTITION BY DAY TTL {{ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(ts, exchange, market_type);

-- Detected new listings and what was collected in the window around the trigger.
CREATE TABLE IF NOT EXISTS {{prefix}}listing_events (
    ts TIMESTAMP,
    symbol SYMBOL CAPACITY 4096 CACHE,
    announced_at TIMESTAMP,
    detected_at TIMESTAMP,
    trigger_delay_ms LONG,
    collected_trades LONG,
    exchanges_with_data INT
) TIMESTAMP(ts) PARTITION BY DAY TTL {{ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(ts, symbol);
