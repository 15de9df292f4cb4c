"""The service's newest snapshot, shared with the API process through shared memory.

The feeds' process publishes a snapshot each tick; the API process reads the newest one when a
request comes. A seqlock over one fixed buffer (``u64 sequence | u32 length | payload``) makes
``publish`` never wait for the reader — a slow, hung or dead API process cannot hold up the feeds
(a pipe or queue could fill and block the writer) — and a reader never sees a torn payload: it
retries while the sequence is odd (a write in progress) or changed under it.

Hand-written because the standard library has the shared memory but no lock-free single-writer
channel over it; the protocol is the textbook seqlock.
"""

from __future__ import annotations

import struct
import time
from multiprocessing import shared_memory
from typing import Any

import msgspec

from ..histogram import Histogram

_HEAD = struct.Struct("<QI")
DEFAULT_BYTES = 4 * 1024 * 1024


class SnapshotTooLargeError(ValueError):
    """A snapshot did not fit the channel (not published; the previous one stays)."""


def encode(snapshot: Any, alerts: list[dict[str, Any]]) -> bytes:
    """A snapshot, its sender's distributions (for Prometheus histograms) and recent alerts."""
    body = snapshot.to_dict()
    sender = snapshot.sender
    hists = {k: h.to_dict() for k, h in sender.histograms.items()} if sender is not None else {}
    return msgspec.json.encode({"snapshot": body, "histograms": hists, "alerts": alerts})


def decode(payload: bytes) -> tuple[Any, list[dict[str, Any]]]:
    """The ``ServiceSnapshot`` (its sender's histograms restored) and the alerts."""
    from ..app.snapshot import ServiceSnapshot

    raw = msgspec.json.decode(payload)
    snap = msgspec.convert(raw["snapshot"], ServiceSnapshot)
    if snap.sender is not None:
        snap.sender.histograms.update({k: Histogram.from_dict(v) for k, v in raw["histograms"].items()})
    return snap, list(raw["alerts"])


class SnapshotChannel:
    """``SnapshotChannel.create()`` in the service, ``SnapshotChannel.attach(name)`` in the API."""

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self._shm = shm
        assert shm.buf is not None
        self._buf: memoryview = shm.buf
        self._owner = owner
        self._seq = 0
        self._closed = False
        self.name = shm.name
        self.capacity = shm.size - _HEAD.size

    @classmethod
    def create(cls, size: int = DEFAULT_BYTES) -> SnapshotChannel:
        channel = cls(shared_memory.SharedMemory(create=True, size=size), owner=True)
        _HEAD.pack_into(channel._buf, 0, 0, 0)
        return channel

    @classmethod
    def attach(cls, name: str) -> SnapshotChannel:
        # The reader is a multiprocessing child: it shares the creator's resource tracker, so its
        # registration is the creator's own (a set entry), removed once, when the creator unlinks.
        return cls(shared_memory.SharedMemory(name=name), owner=False)

    def publish(self, payload: bytes) -> None:
        if len(payload) > self.capacity:
            raise SnapshotTooLargeError(f"snapshot of {len(payload):,} bytes > channel {self.capacity:,}")
        buf = self._buf
        self._seq += 1  # odd: a write is in progress
        _HEAD.pack_into(buf, 0, self._seq, 0)
        buf[_HEAD.size : _HEAD.size + len(payload)] = payload
        self._seq += 1  # even again: complete
        _HEAD.pack_into(buf, 0, self._seq, len(payload))

    def read(self, timeout: float = 1.0) -> bytes | None:
        """The newest complete payload (None when nothing was published yet)."""
        buf = self._buf
        deadline = time.monotonic() + timeout
        while True:
            seq, length = _HEAD.unpack_from(buf, 0)
            if seq == 0:
                return None
            if seq % 2 == 0:
                data = bytes(buf[_HEAD.size : _HEAD.size + length])
                if _HEAD.unpack_from(buf, 0)[0] == seq:
                    return data
            if time.monotonic() > deadline:
                raise TimeoutError("the snapshot channel stayed busy")
            time.sleep(0.0005)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buf.release()
        self._shm.close()
        if self._owner:
            self._shm.unlink()
