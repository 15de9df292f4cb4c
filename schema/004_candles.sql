-- 004: one-minute OHLCV candles per venue and instrument, kept up to date by QuestDB itself.
-- A materialized view refreshes incrementally on every committed trades transaction (refresh
-- type immediate), so chart queries read ~1 row per venue/symbol/minute instead of every trade.
-- Buckets are calendar-aligned (UTC), the same buckets `SAMPLE BY 1m` gives on trades, so
-- store.market.candles returns identical candles from either source.
-- The view expires with the trades it summarises. Its TTL is altered with
-- ALTER MATERIALIZED VIEW (ALTER TABLE refuses a view), and it is removed with
-- DROP MATERIALIZED VIEW (DROP TABLE refuses a view).
CREATE MATERIALIZED VIEW IF NOT EXISTS {{prefix}}candles_1m AS (
    SELECT
        ts,
        exchange,
        market_type,
        symbol,
        first(price) AS open,
        max(price) AS high,
        min(price) AS low,
        last(price) AS close,
        sum(quantity) AS volume,
        count() AS trades
    FROM {{prefix}}trades
    SAMPLE BY 1m
) PARTITION BY DAY TTL {{ttl_days}} DAYS;
