"""Columnar batches across the process boundary: ``TradeBatch`` ⇄ Arrow IPC payloads.

The router shards each batch by a stable hash of (exchange, symbol), so every symbol of a venue
always lands on the same worker and keeps its order. Each shard's rows travel as one Arrow IPC
stream: symbol-like columns dictionary-encoded (a few bytes per row), numbers as raw buffers,
never one pickled object per trade. The same payload is what the spool stores, so a spooled
record replays through exactly the code path a live batch takes — and it names its table in the
schema metadata, so a spool replayed by a sender configured for another table prefix (a
benchmark, a renamed environment) still lands every row where it was meant to go.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ValidationError
from ..models import MARKET_TYPES, NO_SEQUENCE, SIDES, TradeBatch, is_constant

_DICT_COLUMNS = ("exchange", "market_type", "symbol", "side")
TABLE_KEY = b"pumpwatch.table"
_TYPES_MAPPER = {pa.int64(): pd.Int64Dtype()}.get


def shard_of(exchange: str, symbol: str, shards: int) -> int:
    """Stable across processes and runs (unlike ``hash``): CRC-32 of ``exchange␟symbol``."""
    return zlib.crc32(f"{exchange}\x1f{symbol}".encode()) % shards


@dataclass(frozen=True, slots=True)
class ShardPart:
    """One shard's slice of a submitted batch, encoded and counted per exchange."""

    shard: int
    rows: int
    payload: pa.Buffer
    exchange_rows: dict[str, int]


class _Factorized:
    """Integer codes + distinct values of an object column (one hash pass per column)."""

    __slots__ = ("codes", "dictionary", "uniques", "valid")

    def __init__(self, column: npt.NDArray[Any]) -> None:
        if is_constant(column):  # one value on every row (a connector's exchange): no hashing
            self.codes: npt.NDArray[np.int32] = np.zeros(len(column), dtype=np.int32)
            self.uniques: list[Any] = [column[0]]
        else:
            codes, uniques = pd.factorize(column)  # None/NaN get code -1 (rejected by validation)
            self.codes = codes.astype(np.int32, copy=False)
            self.uniques = list(uniques)
        self.valid = not (self.codes < 0).any() and all(isinstance(u, str) and u for u in self.uniques)
        self.dictionary = pa.array(self.uniques, pa.string()) if self.valid else None

    def within(self, allowed: frozenset[str]) -> bool:
        return self.valid and set(self.uniques) <= allowed

    def take(self, index: npt.NDArray[np.intp] | slice) -> pa.DictionaryArray:
        assert self.dictionary is not None
        return pa.DictionaryArray.from_arrays(pa.array(self.codes[index], pa.int32()), self.dictionary)


class ShardRouter:
    """Splits batches into per-shard Arrow payloads; caches the shard of each (exchange, symbol)."""

    def __init__(self, shards: int, table: str = "") -> None:
        if shards < 1:
            raise ValueError("shards must be >= 1")
        self.shards = shards
        self.table = table
        self._cache: dict[tuple[str, str], int] = {}

    def _shard(self, exchange: str, symbol: str) -> int:
        key = (exchange, symbol)
        shard = self._cache.get(key)
        if shard is None:
            shard = self._cache[key] = shard_of(exchange, symbol, self.shards)
        return shard

    def split(self, batch: TradeBatch, *, validate: bool = True) -> list[ShardPart]:
        """Per-shard parts of ``batch`` (row order within each shard kept); empty shards omitted.

        Validates on the way (``ValidationError`` before anything is taken): the string checks
        run on the distinct values found while dictionary-encoding, so they cost almost nothing."""
        n = len(batch)
        if n == 0:
            return []
        cols = {name: _Factorized(getattr(batch, name)) for name in _DICT_COLUMNS}
        trade_ids = _trade_ids(batch)
        if validate:
            batch.validate_numbers()
            checks_pass = (
                cols["exchange"].valid
                and cols["symbol"].valid
                and cols["side"].within(SIDES)
                and cols["market_type"].within(MARKET_TYPES)
                and trade_ids is not None
                and trade_ids.null_count == 0
                and not pc.any(pc.equal(pc.binary_length(trade_ids), 0)).as_py()
            )
            if not checks_pass:
                batch.validate()  # names the field, value and row
                raise ValidationError("batch", None, "rejected by the columnar checks")
        elif trade_ids is None:
            raise ValidationError("trade_id", None, "must be strings")
        ex, sym = cols["exchange"], cols["symbol"]
        pair_codes, pairs = pd.factorize(ex.codes.astype(np.int64) * len(sym.uniques) + sym.codes)
        pair_shard = np.fromiter(
            (self._shard(ex.uniques[p // len(sym.uniques)], sym.uniques[p % len(sym.uniques)]) for p in pairs),
            dtype=np.int32,
            count=len(pairs),
        )
        row_shard = pair_shard[pair_codes]
        parts = []
        for shard in range(self.shards):
            index: npt.NDArray[np.intp] | slice
            if self.shards == 1:
                index = slice(None)
            else:
                index = np.flatnonzero(row_shard == shard)
                if len(index) == 0:
                    continue
            counts = np.bincount(ex.codes[index], minlength=len(ex.uniques))
            exchange_rows = {ex.uniques[i]: int(c) for i, c in enumerate(counts) if c}
            payload = _encode(batch, cols, trade_ids, index, self.table)
            parts.append(ShardPart(shard, int(sum(exchange_rows.values())), payload, exchange_rows))
        return parts


def _trade_ids(batch: TradeBatch) -> pa.StringArray | None:
    try:
        return pa.array(batch.trade_id, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _encode(
    batch: TradeBatch,
    cols: dict[str, _Factorized],
    trade_ids: pa.StringArray,
    index: npt.NDArray[np.intp] | slice,
    table: str = "",
) -> pa.Buffer:
    seq = batch.sequence_number[index]
    record = pa.record_batch(
        {
            "ts": pa.array(batch.ts_ns[index].view("datetime64[ns]")),
            "exchange": cols["exchange"].take(index),
            "market_type": cols["market_type"].take(index),
            "symbol": cols["symbol"].take(index),
            "price": pa.array(batch.price[index]),
            "quantity": pa.array(batch.quantity[index]),
            "side": cols["side"].take(index),
            "trade_id": trade_ids if isinstance(index, slice) else trade_ids.take(pa.array(index)),
            "sequence_number": pa.array(seq, pa.int64(), mask=seq == NO_SEQUENCE),
            "recv_ts": pa.array(batch.recv_ns[index].view("datetime64[ns]")),
        },
        metadata={TABLE_KEY: table.encode()} if table else None,
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, record.schema) as writer:
        writer.write_batch(record)
    return sink.getvalue()


def combine(payloads: list[bytes]) -> bytes:
    """Several payloads as one (one IPC stream, one record batch): the worker coalesces the small
    batches that arrive during an outage into one spool record, so replay is one decode and one
    request per record instead of thousands."""
    if len(payloads) == 1:
        return payloads[0]
    tables = [pa.ipc.open_stream(pa.py_buffer(p)).read_all() for p in payloads]
    names = {t.schema.metadata.get(TABLE_KEY) if t.schema.metadata else None for t in tables}
    if len(names) > 1:
        raise ValueError(f"cannot combine payloads for different tables: {sorted(map(str, names))}")
    table = (
        pa.concat_tables(tables)
        .unify_dictionaries()
        .combine_chunks()
        .replace_schema_metadata(tables[0].schema.metadata)
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def encode_batch(batch: TradeBatch, table: str = "") -> pa.Buffer:
    """One payload for a whole batch (no sharding): used by tests and tools."""
    return ShardRouter(1, table).split(batch)[0].payload


@dataclass(frozen=True, slots=True)
class Decoded:
    """A payload ready for ``Buffer.dataframe`` plus what the books need from it."""

    frame: pd.DataFrame
    ts_ns: npt.NDArray[np.int64]
    exchange_codes: npt.NDArray[np.int32]
    exchanges: list[str]
    table: str = ""  # the table it was meant for ("": the sender's own)

    @property
    def rows(self) -> int:
        return len(self.ts_ns)

    def exchange_rows(self) -> dict[str, int]:
        counts = np.bincount(self.exchange_codes, minlength=len(self.exchanges))
        return {name: int(c) for name, c in zip(self.exchanges, counts, strict=True) if c}


def decode(payload: bytes | memoryview | pa.Buffer) -> Decoded:
    """Payload → pandas frame (categorical symbols, Arrow-backed strings, nullable sequence)."""
    table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all().combine_chunks()
    exchange = (
        table.column("exchange").chunk(0) if table.num_rows else pa.array([], pa.dictionary(pa.int32(), pa.string()))
    )
    meta = table.schema.metadata or {}
    if table.num_rows and table.column("sequence_number").null_count == table.num_rows:
        # A venue without sequence numbers: ILP writes NULLs by leaving the field out, so the column
        # can go before serialisation (a fifth less work for the client on every such batch).
        table = table.drop_columns(["sequence_number"])
    return Decoded(
        frame=table.to_pandas(types_mapper=_TYPES_MAPPER),
        ts_ns=table.column("ts").cast(pa.int64()).to_numpy(),
        exchange_codes=exchange.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
        exchanges=exchange.dictionary.to_pylist(),
        table=meta.get(TABLE_KEY, b"").decode(),
    )


def to_batch(decoded: Decoded) -> TradeBatch:
    """Back to a ``TradeBatch`` (tests, replay tooling)."""
    f = decoded.frame
    seq = (
        f["sequence_number"].to_numpy(dtype=np.int64, na_value=NO_SEQUENCE)
        if "sequence_number" in f
        else np.full(len(f), NO_SEQUENCE, dtype=np.int64)
    )
    return TradeBatch.from_columns(
        ts_ns=decoded.ts_ns,
        exchange=f["exchange"].astype(object).to_numpy(),
        market_type=f["market_type"].astype(object).to_numpy(),
        symbol=f["symbol"].astype(object).to_numpy(),
        price=f["price"].to_numpy(),
        quantity=f["quantity"].to_numpy(),
        side=f["side"].astype(object).to_numpy(),
        trade_id=f["trade_id"].astype(object).to_numpy(),
        sequence_number=seq,
        recv_ns=f["recv_ts"].to_numpy().view(np.int64),
    )
