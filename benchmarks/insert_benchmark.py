"""Insert benchmark: 1,000,000 trades through ``TradeWriter`` vs the raw client's
``Sender.dataframe`` over ILP/HTTP, in one run, timed until ``count()`` shows every row.

    .venv/bin/python benchmarks/insert_benchmark.py [--records N] [--batch-rows B] [--repeat R]

(the same as ``pumpwatch bench insert``). Prints a table and writes
``benchmarks/results/insert.json``. Needs a running QuestDB (``pumpwatch questdb start``).
"""

import sys

from questdb_ingest.cli import main

if __name__ == "__main__":
    main(["bench", "insert", *sys.argv[1:]])
