"""``python -m questdb_ingest``: the ``pumpwatch`` CLI where its script is not on PATH (a venv not
activated, ``pipx run``, a container's entry point)."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="pumpwatch")
