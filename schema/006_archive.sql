-- 006: historical data from archives (seed 004): the observer's scalp ticks, 1-minute bars
-- computed from those ticks, its gap ledger and its swing 10-minute bars; and ingest_state, the
-- archive runner's ledger of source files.
-- Placeholders: {{ticks_ttl_days}} {{bars_ttl_days}} {{gaps_ttl_days}} {{swing_ttl_days}}
-- (archive.*_ttl_days: archives usually outlive the live tables' schema.ttl_days).
-- The DEDUP keys are seed 000's idempotency key (session + timestamp + symbol, plus provider and
-- data type where the record has them), so any rerun of any file changes nothing.
-- source_file is the archive file a row came from: `archive rollback --file` removes exactly
-- those rows. Disk-pressure retention never drops these tables' partitions (their TTL does).

CREATE TABLE IF NOT EXISTS {{prefix}}scalp_ticks (
    event_time TIMESTAMP,
    ts TIMESTAMP,
    symbol SYMBOL CAPACITY 4096 CACHE,
    bid_price DOUBLE,
    ask_price DOUBLE,
    bid_size LONG,
    ask_size LONG,
    last_price DOUBLE,
    volume LONG,
    session_id SYMBOL CAPACITY 1024 CACHE,
    mitigation_level INT,
    quality_flag SYMBOL CAPACITY 16 CACHE,
    schema_version SYMBOL CAPACITY 16 CACHE,
    source_file SYMBOL CAPACITY 65536 NOCACHE
) TIMESTAMP(event_time) PARTITION BY DAY TTL {{ticks_ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(event_time, symbol, session_id);

-- One row per (symbol, session, minute) that has ticks: OHLC of last_price, summed volume, the
-- tick count and coverage_ratio = ticks / (archive.expected_tick_hz × 60); a bar under
-- archive.low_coverage is quality_flag = 'low_coverage'. Recomputed from scalp_ticks by the
-- runner for every minute a file touched (a minute split over two files is whole once both are in).
CREATE TABLE IF NOT EXISTS {{prefix}}scalp_1m_bars (
    bar_time TIMESTAMP,
    symbol SYMBOL CAPACITY 4096 CACHE,
    session_id SYMBOL CAPACITY 1024 CACHE,
    open DOUBLE,
    high DOUBLE,
    low DOUBLE,
    close DOUBLE,
    volume LONG,
    ticks LONG,
    coverage_ratio DOUBLE,
    mitigation_level INT,
    quality_flag SYMBOL CAPACITY 16 CACHE,
    schema_version SYMBOL CAPACITY 16 CACHE
) TIMESTAMP(bar_time) PARTITION BY DAY TTL {{bars_ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(bar_time, symbol, session_id);

CREATE TABLE IF NOT EXISTS {{prefix}}scalp_gaps (
    gap_start_ts TIMESTAMP,
    gap_end_ts TIMESTAMP,
    gap_seconds INT,
    ts TIMESTAMP,
    scope SYMBOL CAPACITY 256 CACHE,
    reason VARCHAR,
    session_id SYMBOL CAPACITY 1024 CACHE,
    schema_version SYMBOL CAPACITY 16 CACHE,
    source_file SYMBOL CAPACITY 65536 NOCACHE
) TIMESTAMP(gap_start_ts) PARTITION BY DAY TTL {{gaps_ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(gap_start_ts, scope, session_id);

CREATE TABLE IF NOT EXISTS {{prefix}}swing_bars_10m (
    bar_time TIMESTAMP,
    symbol SYMBOL CAPACITY 4096 CACHE,
    session_id SYMBOL CAPACITY 1024 CACHE,
    dataset SYMBOL CAPACITY 64 CACHE,
    market SYMBOL CAPACITY 64 CACHE,
    source SYMBOL CAPACITY 64 CACHE,
    open DOUBLE,
    high DOUBLE,
    low DOUBLE,
    close DOUBLE,
    volume LONG,
    bid_price DOUBLE,
    ask_price DOUBLE,
    mitigation_level INT,
    quality_flag SYMBOL CAPACITY 16 CACHE,
    schema_version SYMBOL CAPACITY 16 CACHE,
    source_file SYMBOL CAPACITY 65536 NOCACHE
) TIMESTAMP(bar_time) PARTITION BY DAY TTL {{swing_ttl_days}} DAYS WAL
DEDUP UPSERT KEYS(bar_time, symbol, session_id, source, dataset);

-- The runner's ledger: a row per state change of a source file (the latest per path wins).
-- watermark = lines of the file whose rows QuestDB has confirmed: a rerun after a crash resumes
-- there (rows past it may be resent; DEDUP makes that harmless). Not WAL: a state written is
-- visible to the very next read. Kept for good: it is how a rerun knows what is done. options: the
-- format options the file was read with (JSON), so a rollback of trades rows can read it again.
CREATE TABLE IF NOT EXISTS {{prefix}}ingest_state (
    ts TIMESTAMP,
    path SYMBOL CAPACITY 65536 NOCACHE,
    format SYMBOL CAPACITY 16 CACHE,
    size LONG,
    sha256 VARCHAR,
    status SYMBOL CAPACITY 16 CACHE,
    rows_read LONG,
    rows_written LONG,
    rows_rejected LONG,
    watermark LONG,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    seconds DOUBLE,
    run_id SYMBOL CAPACITY 65536 NOCACHE,
    options VARCHAR,
    error VARCHAR
) TIMESTAMP(ts) PARTITION BY YEAR BYPASS WAL;
