"""``python -m questdb_ingest.cli`` runs the command line (as ``pumpwatch`` does)."""

from . import main

main()
