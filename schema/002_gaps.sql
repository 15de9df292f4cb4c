-- 002: connector gaps (shape of the legacy scalp_gaps table, plus venue columns).
-- One row per disconnect window of one connection: when trades may have been missed, why, and
-- whether the missed trades were fetched back over the venue's REST recent-trades endpoint.
CREATE TABLE IF NOT EXISTS {{prefix}}gaps (
    gap_start_ts TIMESTAMP,
    gap_end_ts TIMESTAMP,
    gap_seconds INT,
    gap_ms LONG,
    exchange SYMBOL CAPACITY 64 CACHE,
    market_type SYMBOL CAPACITY 8 CACHE,
    scope SYMBOL CAPACITY 1024 CACHE,
    reason VARCHAR,
    filled BOOLEAN,
    backfilled_trades LONG,
    symbols INT,
    session_id SYMBOL CAPACITY 1024 CACHE
) TIMESTAMP(gap_start_ts) PARTITION BY DAY TTL {{ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(gap_start_ts, exchange, market_type, scope);
