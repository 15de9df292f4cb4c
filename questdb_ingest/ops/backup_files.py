"""The file side of backups: walking and copying a live QuestDB server root (zero runs as holes,
sha256 as it goes), the tar archives (gzip, or zstd through the ``zstandard`` package or the ``zstd``
program), the destination lock, and QuestDB's ``_txn`` layout, read from the checkpoint."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from ..config import BACKUP_COMPRESSIONS
from ..errors import BackupError
from ..locks import PidLock

RESTORE_TRIGGER = "_restore"  # QuestDB's restore-from-checkpoint trigger, in the server root
# Server-root entries that are not database state: our pid file and log (a copied pid file could
# name an unrelated live process), the web console QuestDB unpacks at start, a stale trigger.
SKIP_TOP = frozenset({"questdb.pid", "questdb.log", "public", RESTORE_TRIGGER})
CHUNK = 1 << 20
HOLE_BLOCK = 64 << 10  # zero runs this long or longer become holes (ext4/xfs blocks are 4 KiB)
_ZERO = bytes(CHUNK)


# --------------------------------------------------------------------------- QuestDB's _txn file
@dataclass(frozen=True)
class TxnState:
    """The committed state a table's ``_txn`` describes (QuestDB ``TableUtils`` offsets)."""

    txn: int
    rows: int
    min_ts: int
    max_ts: int
    seq_txn: int


def read_txn(path: Path) -> TxnState:
    """Parse a ``_txn``: the version picks area A (even) or B (odd); rows = fixed + transient."""
    data = path.read_bytes()
    try:
        (version,) = struct.unpack_from("<q", data, 0)
        (base,) = struct.unpack_from("<i", data, 8 if version % 2 == 0 else 32)
        txn, transient, fixed, min_ts, max_ts = struct.unpack_from("<qqqqq", data, base)
        (seq_txn,) = struct.unpack_from("<q", data, base + 80)
    except struct.error:
        raise BackupError(f"{path}: too short for a QuestDB _txn file ({len(data)} bytes)") from None
    if base < 64 or transient < 0 or fixed < 0:
        raise BackupError(f"{path}: not a QuestDB _txn file this version can read (area at {base})")
    return TxnState(txn=txn, rows=fixed + transient, min_ts=min_ts, max_ts=max_ts, seq_txn=seq_txn)


class DestLock(PidLock):
    """``flock`` on ``<dest>/.lock``: one backup at a time per destination."""

    def __init__(self, dest: Path) -> None:
        super().__init__(dest / ".lock")

    def __enter__(self) -> DestLock:
        if not self.acquire():
            raise BackupError(f"a backup is already being written to {self.path.parent} (pid {self.holder()})")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def walk_root(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Directories and (file, size) under the server root, relative, sorted; skips what is not state."""
    dirs: list[str] = []
    files: list[tuple[str, int]] = []
    for current, subdirs, names in os.walk(root, followlinks=True):
        rel = Path(current).relative_to(root)
        if rel == Path("."):
            subdirs[:] = [d for d in subdirs if d not in SKIP_TOP]
            names = [n for n in names if n not in SKIP_TOP and not n.startswith("questdb.log")]
        subdirs.sort()
        for d in subdirs:
            dirs.append((rel / d).as_posix())
        for n in sorted(names):
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(Path(current) / n)
                if stat.S_ISREG(st.st_mode):
                    files.append(((rel / n).as_posix(), st.st_size))
    return dirs, files


def copy_sparse(src: IO[bytes], dst: BinaryIO, on_bytes: Callable[[int], None], limit: int = -1) -> tuple[int, str]:
    """Copy ``src`` into ``dst`` (to ``limit`` bytes, or EOF), zero chunks as holes; returns size, sha256."""
    digest = hashlib.sha256()
    size = 0
    while limit < 0 or size < limit:
        chunk = src.read(CHUNK if limit < 0 else min(CHUNK, limit - size))
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
        if chunk == _ZERO[: len(chunk)]:
            dst.seek(len(chunk), os.SEEK_CUR)
        else:  # a column file's data ends somewhere in this chunk: keep the zero blocks after it holes
            view = memoryview(chunk)
            for at in range(0, len(chunk), HOLE_BLOCK):
                block = view[at : at + HOLE_BLOCK]
                if block == _ZERO[: len(block)]:
                    dst.seek(len(block), os.SEEK_CUR)
                else:
                    dst.write(block)
        on_bytes(len(chunk))
    dst.truncate(size)
    return size, digest.hexdigest()


def copy_file(src: Path, dst: Path, on_bytes: Callable[[int], None]) -> tuple[int, str]:
    """One file into another as ``copy_sparse`` does (a module attribute, so a test can make it fail)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        return copy_sparse(fin, fout, on_bytes)


class Padded:
    """Exactly ``size`` bytes of a file for a tar member, hashed as read; a file QuestDB truncated
    while it was copied is padded with zeros (only bytes past the checkpointed data go)."""

    def __init__(self, f: IO[bytes], size: int, on_bytes: Callable[[int], None]) -> None:
        self._f = f
        self._left = size
        self._on_bytes = on_bytes
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n < 0 else min(n, self._left)
        data = self._f.read(n)
        if len(data) < n:
            data += bytes(n - len(data))
        self._left -= n
        self.digest.update(data)
        self._on_bytes(n)
        return data


# --------------------------------------------------------------------------- compression
def zstandard_module() -> Any:
    try:
        return importlib.import_module("zstandard")
    except ImportError:
        return None


def zstd_available() -> bool:
    return zstandard_module() is not None or shutil.which("zstd") is not None


def check_compression(compress: str) -> None:
    """Fail before any checkpoint when the chosen compression cannot run here."""
    if compress not in BACKUP_COMPRESSIONS:
        raise BackupError(f"unknown compression {compress!r}; choose one of {', '.join(BACKUP_COMPRESSIONS)}")
    if compress == "zstd" and not zstd_available():
        raise BackupError(
            "--compress zstd needs the zstandard Python package or the zstd program on PATH; neither is "
            "installed (use --compress gzip, or install one of them)"
        )


class PipeWriter:
    """A writable stream into ``zstd -c`` whose output is the archive file."""

    def __init__(self, cmd: list[str], out: Path) -> None:
        self._out = open(out, "wb")  # noqa: SIM115 - closed in close()
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=self._out, stderr=self._err)
        self.closed = False

    def write(self, b: Any) -> int:
        assert self._proc.stdin is not None
        self._proc.stdin.write(b)
        return len(b)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        code = self._proc.wait()
        self._out.close()
        self._err.seek(0)
        message = self._err.read().decode(errors="replace").strip()
        self._err.close()
        if code != 0:
            raise BackupError(f"zstd exited with code {code}: {message}")


@contextlib.contextmanager
def archive_writer(path: Path, compress: str) -> Iterator[tarfile.TarFile]:
    """A streaming tar writer into ``path`` compressed with gzip or zstd."""
    stream: Any
    raw: IO[bytes] | None = None
    if compress == "gzip":
        stream = gzip.open(path, "wb", compresslevel=3)  # noqa: SIM115 - closed below
    elif (zstd := zstandard_module()) is not None:
        raw = open(path, "wb")  # noqa: SIM115 - closed below
        stream = zstd.ZstdCompressor(level=3, threads=-1).stream_writer(raw, closefd=False)
    else:
        stream = PipeWriter(["zstd", "-q", "-3", "-T0", "-c"], path)
    try:
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            yield tar
    finally:
        stream.close()
        if raw is not None:
            raw.close()


@contextlib.contextmanager
def archive_reader(path: Path, compress: str) -> Iterator[tarfile.TarFile]:
    """A streaming tar reader of a backup archive (any decompression error surfaces as it reads)."""
    proc: subprocess.Popen[bytes] | None = None
    raw: IO[bytes] | None = None
    stream: Any
    if compress == "gzip":
        stream = gzip.open(path, "rb")  # noqa: SIM115 - closed below
    elif (zstd := zstandard_module()) is not None:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
        stream = zstd.ZstdDecompressor().stream_reader(raw)
    elif shutil.which("zstd") is not None:
        proc = subprocess.Popen(["zstd", "-q", "-dc", "--", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stream = proc.stdout
    else:
        raise BackupError(f"{path} is zstd-compressed: reading it needs the zstandard package or the zstd program")
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            yield tar
        if proc is not None:
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.read()
            if proc.wait() != 0:
                raise BackupError(f"zstd could not decompress {path}: {proc.stderr.read().decode(errors='replace')}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        stream.close()
        if raw is not None:
            raw.close()


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            if on_bytes:
                on_bytes(len(chunk))
    return digest.hexdigest()
