"""Historical data in: archive files → QuestDB, exactly once, resumable.

``sources`` opens a file (plain, gzip, zstd, zip) as numbered lines and tells its format;
``formats`` turns a batch of lines into one table's rows plus the lines it rejects; ``state`` is
the ``ingest_state`` ledger (per file: hash, counts, the watermark); ``runner`` ingests files in
parallel through the project's writer path, recomputes the 1-minute bars from the ticks and
records every step; ``rollback`` removes exactly what a file or a session wrote.
"""
