"""Insert benchmark: the sharded sender vs the raw client's dataframe path on the same transport,
with the per-row f-string ILP/TCP baseline, in one run, timed until ``count()`` shows every row.

    .venv/bin/python benchmarks/insert_benchmark.py [--records N] [--workers W] [--transport http|ws|tcp]

(the same as ``pumpwatch bench insert``). Prints a table and writes
``benchmarks/results/insert.json``. Needs a running QuestDB (``pumpwatch questdb start``).
"""

import sys

from questdb_ingest.cli import main

if __name__ == "__main__":
    main(["bench", "insert", *sys.argv[1:]])
