"""Archive files as numbered lines: plain, ``.gz``, ``.zst``/``.zstd`` or a ``.zip`` holding one
CSV (the Binance data-dump layout), and the format of each file (by name, else by its first line).

Line numbers are 1-based and count every line of the decompressed text, blank ones included, so a
reject's line number is what ``sed -n Np`` shows and the watermark (lines consumed) is exact.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import msgspec
import zstandard

from ..errors import ArchiveFormatError

FORMATS = ("swing", "scalp", "gaps", "binance_trades", "recording", "csv_trades", "parquet_trades")
# Seed 004's layout: swing/YYYYMMDD_HHMM.jsonl, scalp/YYYYMMDD_HHMM.jsonl, system/gap_YYYYMMDD.jsonl.
_OBSERVER = re.compile(r"^\d{8}_\d{4}\.jsonl$")
_GAP_FILE = re.compile(r"^gap_\d{8}\.jsonl$")
# The public Binance data dump: <SYMBOL>-trades-YYYY-MM-DD.csv (or .zip with that CSV inside).
BINANCE_TRADES = re.compile(r"^([A-Z0-9]+)-trades-(\d{4}-\d{2}(?:-\d{2})?)\.(?:csv|zip)$")
_COMPRESSED = (".gz", ".zst", ".zstd")
_SUFFIXES = (".jsonl", ".csv", ".zip", ".parquet")


def plain_name(path: Path) -> str:
    """The file name without a compression suffix (``x.jsonl.gz`` → ``x.jsonl``)."""
    name = path.name
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_archive_file(path: Path) -> bool:
    return plain_name(path).endswith(_SUFFIXES)


def expand(paths: list[Path]) -> list[Path]:
    """Files named, and every archive file under a named directory (sorted, so runs are repeatable)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and is_archive_file(f) and ".rejects." not in f.name)
        elif p.is_file():
            out.append(p)
        else:
            raise ArchiveFormatError(str(p), "no such file or directory")
    seen: set[Path] = set()
    return [p for p in (q.resolve() for q in out) if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]


def file_digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of the file as stored (compressed bytes): what tells a changed file."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


@contextmanager
def open_text(path: Path) -> Iterator[IO[bytes]]:
    """The decompressed bytes of ``path`` as a stream (a zip must hold exactly one member)."""
    name = path.name
    if name.endswith(".gz"):
        with gzip.open(path, "rb") as gz:
            yield gz  # type: ignore[misc]
    elif name.endswith((".zst", ".zstd")):
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            yield io.BufferedReader(reader, 1 << 20)
    elif name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise ArchiveFormatError(str(path), f"a zip must hold exactly one file, it holds {len(members)}")
            with zf.open(members[0]) as fh:
                yield fh
    else:
        with path.open("rb") as fh:
            yield fh


def numbered_lines(stream: IO[bytes], skip: int = 0) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its newline), from line ``skip + 1`` on."""
    number = 0
    for raw in stream:
        number += 1
        if number <= skip:
            continue
        yield number, raw.rstrip(b"\r\n")


def first_line(path: Path) -> bytes:
    with open_text(path) as fh:
        for _, line in numbered_lines(fh):
            if line.strip():
                return line
    return b""


def detect_format(path: Path) -> str:
    """The format by name (seed 004's directories, the Binance dump's file names, a recording's
    ``<connector>.jsonl``), else by the keys of the first record."""
    name = plain_name(path)
    if name.endswith(".parquet"):
        return "parquet_trades"
    if BINANCE_TRADES.match(name):
        return "binance_trades"
    if _GAP_FILE.match(name):
        return "gaps"
    if _OBSERVER.match(name) and path.parent.name in ("swing", "scalp"):
        return path.parent.name
    head = first_line(path)
    if name.endswith(".csv"):
        return "csv_trades"
    try:
        keys = msgspec.json.decode(head)
    except msgspec.DecodeError:
        raise ArchiveFormatError(str(path), "cannot tell the format: the first line is not a JSON object") from None
    if isinstance(keys, dict):
        if "recv_ns" in keys and ("text" in keys or "b64" in keys):
            return "recording"
        if "gap_start_ts" in keys:
            return "gaps"
        if isinstance(keys.get("price"), dict):
            return "swing"
        if "event_time" in keys and "last_price" in keys:
            return "scalp"
    raise ArchiveFormatError(str(path), "cannot tell the format from its name or first record; pass --format")
