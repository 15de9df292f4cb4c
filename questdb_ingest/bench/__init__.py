"""Benchmarks run from the CLI (``pumpwatch bench ...``) and from ``benchmarks/``."""
