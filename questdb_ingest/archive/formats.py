"""Archive formats: a batch of numbered lines → one table's rows, plus the lines refused and why.

Every format is pure (no I/O): ``decode(lines, source)`` returns a ``Decoded`` holding either a
DataFrame for an archive table or a ``TradeBatch`` for ``trades``, and a ``Reject`` (line number,
reason, the raw line) for every line that is not a usable record. Nothing is dropped silently: a
line is a row, a reject, or blank.

- ``swing`` / ``scalp`` / ``gaps``: the observer's JSONL exactly as seed 004 §1 shows it.
- ``binance_trades``: the public Binance data-dump trade CSV (spot: id, price, qty, quote_qty,
  time, is_buyer_maker, is_best_match; USDⓈ-M: the first six), with or without a header; times
  in ms, or µs (spot dumps since 2025), told apart by magnitude.
- ``recording``: ``pumpwatch record`` output, each frame through the venue's real parser.
- ``csv_trades`` / ``parquet_trades``: any trades table with a column mapping.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pandas as pd

from ..connectors.core import Instrument, Instruments, TradeColumns, split_concatenated
from ..errors import ArchiveFormatError, FrameError
from ..models import MIN_TS_NS, TradeBatch, constant_column

SCHEMA_VERSION = "1.0"
Lines = Sequence[tuple[int, bytes]]


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str
    raw: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "raw": self.raw.decode("utf-8", "replace")}


@dataclass
class Decoded:
    """One batch: rows for ``table`` (``frame`` for an archive table, ``trades`` for trades)."""

    table: str
    frame: pd.DataFrame | None = None
    trades: TradeBatch | None = None
    rejects: list[Reject] = field(default_factory=list)
    symbols: tuple[str, ...] = ()  # SYMBOL columns of ``frame``
    at: str = ""  # designated timestamp column of ``frame``
    min_ns: int | None = None
    max_ns: int | None = None

    @property
    def rows(self) -> int:
        if self.trades is not None:
            return len(self.trades)
        return 0 if self.frame is None else len(self.frame)


@dataclass(frozen=True)
class Options:
    """What a format may need beyond the lines (from the command line)."""

    market_type: str = ""  # binance_trades: spot | futures ("" = told from the path)
    exchange: str = ""  # csv/parquet trades: the exchange of every row
    mapping: Mapping[str, str] = field(default_factory=dict)  # csv/parquet trades: our column → theirs
    ts_unit: str = "auto"  # csv/parquet trades: s | ms | us | ns | iso | auto (by magnitude, ISO text)
    symbol: str = ""  # csv/parquet trades: the symbol of every row when none is mapped
    header: tuple[str, ...] = ()  # csv trades: the file's header (the runner reads it)

    _SAVED = ("market_type", "exchange", "mapping", "ts_unit", "connector", "symbol")

    def to_json(self) -> str:
        """What the user chose (kept in ``ingest_state``: a rollback reads the file the same way)."""
        return json.dumps({k: dict(v) if k == "mapping" else v for k in self._SAVED if (v := getattr(self, k))})

    @classmethod
    def from_json(cls, text: str) -> Options:
        return cls(**{k: v for k, v in (json.loads(text) if text else {}).items() if k in cls._SAVED})

    connector: str = ""  # recording: the connector (default: the file stem)
    instruments: tuple[Instrument, ...] = ()  # recording: from its sidecar (contract sizes)


class _Price(msgspec.Struct, frozen=True):
    open: float
    high: float
    low: float
    close: float


class SwingRecord(msgspec.Struct, frozen=True):
    ts: str
    session: str
    symbol: str
    price: _Price
    volume: int
    dataset: str = ""
    market: str = ""
    bid_price: float | None = None
    ask_price: float | None = None
    source: str = ""
    mitigation_level: int = 0
    quality_flag: str = "normal"


class ScalpRecord(msgspec.Struct, frozen=True):
    event_time: str
    symbol: str
    session_id: str
    ts: str | None = None
    bid_price: float | None = None
    ask_price: float | None = None
    bid_size: int | None = None
    ask_size: int | None = None
    last_price: float | None = None
    volume: int | None = None
    mitigation_level: int = 0
    quality_flag: str = "normal"


class GapRecord(msgspec.Struct, frozen=True):
    gap_start_ts: str
    gap_end_ts: str
    gap_seconds: float
    scope: str
    session_id: str
    timestamp: str | None = None
    reason: str = ""


_SWING = msgspec.json.Decoder(SwingRecord)
_SCALP = msgspec.json.Decoder(ScalpRecord)
_GAP = msgspec.json.Decoder(GapRecord)


def iso_to_ns(values: Sequence[str | None]) -> npt.NDArray[np.int64]:
    """ISO-8601 texts (``Z`` or an offset; naive = UTC) → int64 ns; unreadable → ``MIN_TS_NS - 1``.

    Vectorised (pandas), so a million ticks cost one call, not a million ``datetime`` objects."""
    parsed = pd.to_datetime(pd.Series(list(values), dtype=object), format="ISO8601", utc=True, errors="coerce")
    ns = parsed.dt.as_unit("ns").astype("int64").to_numpy().copy()
    ns[parsed.isna().to_numpy()] = MIN_TS_NS - 1
    return ns.astype(np.int64)


def _decode_all(
    lines: Lines, decoder: msgspec.json.Decoder[Any]
) -> tuple[list[Any], list[tuple[int, bytes]], list[Reject]]:
    """Records and their lines; a line the decoder refuses is a reject with msgspec's reason.
    All lines good (the usual batch) takes one comprehension; the first bad one falls back to
    the line-by-line loop that sorts them out."""
    decode = decoder.decode
    try:
        return [decode(item[1]) for item in lines], list(lines), []
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeError, ValueError):
        pass
    records: list[Any] = []
    kept: list[tuple[int, bytes]] = []
    rejects: list[Reject] = []
    for item in lines:
        raw = item[1]
        try:
            records.append(decode(raw))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if raw.strip():  # a blank line is no record, and no reject either
                rejects.append(Reject(item[0], f"not a record: {exc}", raw))
            continue
        except (RecursionError, UnicodeError, ValueError) as exc:
            rejects.append(Reject(item[0], f"unreadable: {type(exc).__name__}: {exc}", raw))
            continue
        kept.append(item)
    return records, kept, rejects


def _split(
    bad: dict[str, npt.NDArray[np.bool_]], kept: list[tuple[int, bytes]], rejects: list[Reject]
) -> npt.NDArray[np.bool_] | slice:
    """Rows to keep (a mask, or ``slice(None)`` when all stay: no copy); every bad row becomes a
    reject naming its first failed check."""
    n = len(kept)
    any_bad = np.zeros(n, dtype=bool)
    for reason, mask in bad.items():
        if not mask.any():
            continue
        for i in np.flatnonzero(mask & ~any_bad):
            rejects.append(Reject(kept[i][0], reason, kept[i][1]))
        any_bad |= mask
    if not any_bad.any():
        return slice(None)
    rejects.sort(key=lambda r: r.line)
    return ~any_bad


def _column(recs: list[Any], name: str) -> list[Any]:
    """One attribute of every record (``attrgetter`` in C: no Python frame per row)."""
    return list(map(attrgetter(name), recs))


def _objects(recs: list[Any], name: str) -> npt.NDArray[Any]:
    arr = np.empty(len(recs), dtype=object)
    arr[:] = _column(recs, name)
    return arr


def _floats(recs: list[Any], name: str) -> npt.NDArray[np.float64]:
    """A DOUBLE column; ``None`` (null in the record) becomes NaN, which ILP writes as NULL."""
    return np.array(_column(recs, name), dtype=np.float64)


def _ints(recs: list[Any], name: str) -> npt.NDArray[np.int64] | pd.Series[Any]:
    """A LONG column: plain int64 when every value is there (the usual case), else nullable Int64."""
    values = _column(recs, name)
    try:
        return np.array(values, dtype=np.int64)
    except TypeError:  # a None among them
        return pd.Series(pd.array(values, dtype="Int64"))


def _negative(values: npt.NDArray[np.int64] | pd.Series[Any]) -> npt.NDArray[np.bool_]:
    if isinstance(values, pd.Series):
        return np.asarray(values.fillna(0).to_numpy(dtype=np.int64) < 0, dtype=bool)
    return values < 0


def _take(values: Any, keep: npt.NDArray[np.bool_] | slice) -> Any:
    if isinstance(keep, slice):
        return values
    if isinstance(values, pd.Series):
        return values[keep].reset_index(drop=True)
    return values[keep]


def _text(values: npt.NDArray[Any]) -> pd.Categorical[Any]:
    """A SYMBOL column as a categorical: the client encodes each distinct value once."""
    return pd.Categorical(values)


def _constant(value: str, n: int) -> pd.Categorical[str]:
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), pd.Index([value]))


def _with_span(decoded: Decoded, ts: npt.NDArray[np.int64]) -> Decoded:
    if len(ts):
        decoded.min_ns, decoded.max_ns = int(ts.min()), int(ts.max())
    return decoded


def _bad_ts(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    return ts < MIN_TS_NS


def _bad_price(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Negative or infinite; null (NaN) is allowed (the seed's columns are nullable)."""
    return ~np.isnan(values) & ~(np.isfinite(values) & (values >= 0))


def _empty(*columns: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    out = np.zeros(len(columns[0]), dtype=bool)
    for col in columns:
        out |= col == ""
    return out


def _frame(columns: dict[str, Any], keep: npt.NDArray[np.bool_] | slice, source: str) -> pd.DataFrame:
    """The kept rows as the table's frame: SYMBOL columns (object arrays) as categoricals, time
    columns (int64 ns) as datetimes, plus schema_version and source_file."""
    out: dict[str, Any] = {}
    n = 0
    for name, values in columns.items():
        kept = _take(values, keep)
        n = len(kept)
        if isinstance(kept, np.ndarray) and kept.dtype == object:
            out[name] = _text(kept) if name != "reason" else pd.Series(kept, dtype=object)
        elif name in _TIME_COLUMNS:
            out[name] = kept.astype("datetime64[ns]")
        else:
            out[name] = kept
    out["schema_version"] = _constant(SCHEMA_VERSION, n)
    out["source_file"] = _constant(source, n)
    return pd.DataFrame(out)


_TIME_COLUMNS = frozenset({"bar_time", "event_time", "ts", "gap_start_ts", "gap_end_ts"})


def decode_swing(lines: Lines, source: str, options: Options | None = None) -> Decoded:
    """Swing 10-minute records → ``swing_bars_10m`` (bar_time = ``ts``, session_id = ``session``)."""
    recs, kept, rejects = _decode_all(lines, _SWING)
    prices = [r.price for r in recs]
    o, h, lo, c = (
        np.array(list(map(attrgetter(k), prices)), dtype=np.float64) for k in ("open", "high", "low", "close")
    )
    cols: dict[str, Any] = {
        "bar_time": iso_to_ns(_column(recs, "ts")),
        "symbol": _objects(recs, "symbol"),
        "session_id": _objects(recs, "session"),
        "dataset": _objects(recs, "dataset"),
        "market": _objects(recs, "market"),
        "source": _objects(recs, "source"),
        "open": o,
        "high": h,
        "low": lo,
        "close": c,
        "volume": _ints(recs, "volume"),
        "bid_price": _floats(recs, "bid_price"),
        "ask_price": _floats(recs, "ask_price"),
        "mitigation_level": np.array(_column(recs, "mitigation_level"), dtype=np.int32),
        "quality_flag": _objects(recs, "quality_flag"),
    }
    ohlc = np.stack([o, h, lo, c]) if recs else np.zeros((4, 0))
    keep = _split(
        {
            "ts: not an ISO-8601 time after 2009": _bad_ts(cols["bar_time"]),
            "symbol and session must not be empty": _empty(cols["symbol"], cols["session_id"]),
            "price: open/high/low/close must be finite and >= 0": np.asarray(
                ~(np.isfinite(ohlc) & (ohlc >= 0)).all(axis=0), dtype=bool
            ),
            "price: high below low, or open/close outside [low, high]": (h < lo)
            | (o < lo)
            | (o > h)
            | (c < lo)
            | (c > h),
            "bid_price/ask_price must be >= 0": _bad_price(cols["bid_price"]) | _bad_price(cols["ask_price"]),
            "volume must be >= 0": _negative(cols["volume"]),
        },
        kept,
        rejects,
    )
    frame = _frame(cols, keep, source)
    symbols = ("symbol", "session_id", "dataset", "market", "source", "quality_flag", "schema_version", "source_file")
    return _with_span(
        Decoded("swing_bars_10m", frame, None, rejects, symbols, "bar_time"), _take(cols["bar_time"], keep)
    )


def decode_scalp(lines: Lines, source: str, options: Options | None = None) -> Decoded:
    """Scalp ticks → ``scalp_ticks`` (designated time = ``event_time``; ``ts`` = when recorded,
    the event time when the record has none)."""
    recs, kept, rejects = _decode_all(lines, _SCALP)
    event = iso_to_ns(_column(recs, "event_time"))
    recorded_text = _column(recs, "ts")
    recorded = iso_to_ns(recorded_text)
    no_ts = np.fromiter((t is None for t in recorded_text), dtype=bool, count=len(recs))
    cols: dict[str, Any] = {
        "event_time": event,
        "ts": np.where(no_ts, event, recorded),
        "symbol": _objects(recs, "symbol"),
        "bid_price": _floats(recs, "bid_price"),
        "ask_price": _floats(recs, "ask_price"),
        "bid_size": _ints(recs, "bid_size"),
        "ask_size": _ints(recs, "ask_size"),
        "last_price": _floats(recs, "last_price"),
        "volume": _ints(recs, "volume"),
        "session_id": _objects(recs, "session_id"),
        "mitigation_level": np.array(_column(recs, "mitigation_level"), dtype=np.int32),
        "quality_flag": _objects(recs, "quality_flag"),
    }
    keep = _split(
        {
            "event_time: not an ISO-8601 time after 2009": _bad_ts(event),
            "ts: not an ISO-8601 time": ~no_ts & _bad_ts(recorded),
            "symbol and session_id must not be empty": _empty(cols["symbol"], cols["session_id"]),
            "bid_price/ask_price/last_price must be finite and >= 0": _bad_price(cols["bid_price"])
            | _bad_price(cols["ask_price"])
            | _bad_price(cols["last_price"]),
            "bid_size/ask_size/volume must be >= 0": _negative(cols["bid_size"])
            | _negative(cols["ask_size"])
            | _negative(cols["volume"]),
        },
        kept,
        rejects,
    )
    frame = _frame(cols, keep, source)
    symbols = ("symbol", "session_id", "quality_flag", "schema_version", "source_file")
    return _with_span(Decoded("scalp_ticks", frame, None, rejects, symbols, "event_time"), _take(event, keep))


def decode_gaps(lines: Lines, source: str, options: Options | None = None) -> Decoded:
    """The gap ledger → ``scalp_gaps`` (``timestamp`` = when the gap was logged; the gap's end
    when the record has none)."""
    recs, kept, rejects = _decode_all(lines, _GAP)
    start = iso_to_ns(_column(recs, "gap_start_ts"))
    end = iso_to_ns(_column(recs, "gap_end_ts"))
    logged_text = _column(recs, "timestamp")
    logged = iso_to_ns(logged_text)
    no_logged = np.fromiter((t is None for t in logged_text), dtype=bool, count=len(recs))
    seconds = np.array(_column(recs, "gap_seconds"), dtype=np.float64)
    cols: dict[str, Any] = {
        "gap_start_ts": start,
        "gap_end_ts": end,
        "gap_seconds": np.ceil(np.nan_to_num(seconds, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.int32),
        "ts": np.where(no_logged, end, logged),
        "scope": _objects(recs, "scope"),
        "reason": _objects(recs, "reason"),
        "session_id": _objects(recs, "session_id"),
    }
    keep = _split(
        {
            "gap_start_ts/gap_end_ts: not ISO-8601 times after 2009": _bad_ts(start) | _bad_ts(end),
            "timestamp: not an ISO-8601 time": ~no_logged & _bad_ts(logged),
            "gap_end_ts is before gap_start_ts": end < start,
            "gap_seconds must be finite and >= 0": ~(np.isfinite(seconds) & (seconds >= 0)),
            "scope and session_id must not be empty": _empty(cols["scope"], cols["session_id"]),
        },
        kept,
        rejects,
    )
    frame = _frame(cols, keep, source)
    symbols = ("scope", "session_id", "schema_version", "source_file")
    return _with_span(Decoded("scalp_gaps", frame, None, rejects, symbols, "gap_start_ts"), _take(start, keep))


# --------------------------------------------------------------------------- trades
def _trades(batch: TradeBatch, rejects: list[Reject], lines: list[int], raws: list[bytes]) -> Decoded:
    """A ``TradeBatch`` with the rows ``TradeBatch.validate`` would refuse moved to rejects."""
    bad = batch.invalid_mask()
    if bad.any():
        for i in np.flatnonzero(bad):
            rejects.append(
                Reject(lines[i], "invalid trade (price/quantity <= 0, time out of range, or bad symbol)", raws[i])
            )
        rejects.sort(key=lambda r: r.line)
        batch = batch.take(~bad)
    out = Decoded("trades", None, batch, rejects)
    return _with_span(out, batch.ts_ns)


def binance_market(source: str, options: Options) -> str:
    """spot | futures: the option, else ``futures`` when the path is under the dump's ``futures/``."""
    if options.market_type:
        return options.market_type
    return "futures" if "/futures/" in source else "spot"


def _bool(value: bytes) -> bool:
    low = value.strip().lower()
    if low in (b"true", b"1"):
        return True
    if low in (b"false", b"0"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def time_to_ns(value: int) -> int:
    """A Binance dump time: µs (16 digits, spot since 2025) or ms (13 digits) → ns."""
    return value * 1_000 if value >= 10**15 else value * 1_000_000


def decode_binance_trades(lines: Lines, source: str, options: Options | None = None) -> Decoded:
    """Binance data-dump trade CSV lines → ``trades`` (symbol from the file name)."""
    from pathlib import Path

    from .sources import BINANCE_TRADES, plain_name

    options = options or Options()
    match = BINANCE_TRADES.match(plain_name(Path(source)))
    if match is None:
        raise ArchiveFormatError(source, "a Binance trade dump is named <SYMBOL>-trades-YYYY-MM-DD.csv|zip")
    pair = split_concatenated(match[1])
    if pair is None:
        raise ArchiveFormatError(source, f"cannot split {match[1]!r} into base and quote")
    symbol = f"{pair[0]}-{pair[1]}"
    market = binance_market(source, options)
    ts: list[int] = []
    price: list[float] = []
    qty: list[float] = []
    side: list[str] = []
    ids: list[str] = []
    numbers: list[int] = []
    raws: list[bytes] = []
    rejects: list[Reject] = []
    for number, raw in lines:
        if not raw.strip():
            continue
        cells = raw.split(b",")
        if cells[0].strip() == b"id":  # a header line
            continue
        try:
            if len(cells) not in (6, 7):
                raise ValueError(f"expected 6 (USDⓈ-M) or 7 (spot) columns, got {len(cells)}")
            trade_id = int(cells[0])
            p, q = float(cells[1]), float(cells[2])
            t = time_to_ns(int(cells[4]))
            maker = _bool(cells[5])
        except ValueError as exc:
            rejects.append(Reject(number, f"not a trade row: {exc}", raw))
            continue
        ts.append(t)
        price.append(p)
        qty.append(q)
        side.append("sell" if maker else "buy")  # buyer is maker ⇒ the taker sold
        ids.append(str(trade_id))
        numbers.append(number)
        raws.append(raw)
    n = len(ts)
    batch = TradeBatch.from_columns(
        ts_ns=ts,
        exchange=constant_column("binance", n),
        market_type=constant_column(market, n),
        symbol=[symbol] * n,
        price=price,
        quantity=qty,
        side=side,
        trade_id=ids,
    )
    return _trades(batch, rejects, numbers, raws)


class _RecordedLine(msgspec.Struct, frozen=True):
    recv_ns: int
    text: str | None = None
    b64: str | None = None


_RECORDED = msgspec.json.Decoder(_RecordedLine)


def decode_recording(lines: Lines, source: str, options: Options | None = None) -> Decoded:
    """``pumpwatch record`` lines → the venue's parser → ``trades``; a frame the parser refuses is a
    reject with the parser's reason (the same reason the live feed would dead-letter it with)."""
    from pathlib import Path

    from ..connectors.registry import connector
    from .sources import plain_name

    options = options or Options()
    name = options.connector or plain_name(Path(source)).removesuffix(".jsonl")
    try:
        proto = connector(name).protocol()
    except Exception as exc:  # ConfigError naming the known connectors
        raise ArchiveFormatError(source, f"a recording is named <connector>.jsonl: {exc}") from None
    parse = proto.make_parser(Instruments(options.instruments))
    out = TradeColumns()
    rejects: list[Reject] = []
    numbers: list[int] = []
    raws: list[bytes] = []
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            rec = _RECORDED.decode(raw)
            if (rec.text is None) == (rec.b64 is None):
                raise ValueError('needs exactly one of "text" and "b64"')
            frame: str | bytes = rec.text if rec.text is not None else base64.b64decode(rec.b64 or "", validate=True)
            added = parse(frame, rec.recv_ns, out)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, binascii.Error) as exc:
            if isinstance(exc, FrameError):
                rejects.append(Reject(number, f"frame refused by the {name} parser: {exc}", raw))
            else:
                rejects.append(Reject(number, f"not a recorded frame: {exc}", raw))
            continue
        numbers += [number] * added
        raws += [raw] * added
    batch = out.drain(proto.spec.exchange, proto.spec.market_type)
    return _trades(batch, rejects, numbers, raws)


# --------------------------------------------------------------------------- mapped trades
TRADE_FIELDS = ("ts", "symbol", "price", "quantity", "side", "trade_id", "exchange", "market_type")
REQUIRED_FIELDS = ("ts", "price", "quantity", "side", "trade_id")
TS_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_SIDE_WORDS = {"buy": "buy", "b": "buy", "sell": "sell", "s": "sell"}


def parse_mapping(text: str) -> dict[str, str]:
    """``ts=time,price=p,…`` → {our column: theirs}; every required column mapped, no unknown one."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        ours, eq, theirs = part.partition("=")
        if not eq or not theirs.strip():
            raise ValueError(f"expected OURS=THEIRS, got {part!r}")
        if ours.strip() not in TRADE_FIELDS:
            raise ValueError(f"unknown column {ours.strip()!r}; ours are {', '.join(TRADE_FIELDS)}")
        out[ours.strip()] = theirs.strip()
    missing = [f for f in REQUIRED_FIELDS if f not in out]
    if missing:
        raise ValueError(f"map these columns too: {', '.join(missing)}")
    return out


def _ts_column(values: pd.Series[Any], unit: str) -> npt.NDArray[np.int64]:
    """Times as ns: numbers in ``unit`` (``auto``: s/ms/µs/ns by magnitude), or ISO-8601 texts.
    Integer columns are scaled exactly (no float rounding of ns); unreadable → before 2009."""
    numbers = pd.to_numeric(values, errors="coerce")
    if unit == "iso" or (unit == "auto" and len(values) and numbers.isna().all()):
        return iso_to_ns([None if pd.isna(v) else str(v) for v in values])
    n = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    if unit == "auto":
        scale = np.select([n >= 1e17, n >= 1e14, n >= 1e11], [1, 1_000, 1_000_000], default=1_000_000_000)
    else:
        scale = np.full(len(n), TS_UNITS[unit])
    out = np.full(len(n), MIN_TS_NS - 1, dtype=np.int64)
    ok = np.isfinite(n)
    if numbers.dtype.kind in "iu":
        out[ok] = numbers.to_numpy(dtype=np.int64)[ok] * scale[ok].astype(np.int64)
    else:
        out[ok] = np.round(n[ok] * scale[ok]).astype(np.int64)
    return out


def decode_mapped_trades(
    frame: pd.DataFrame, numbers: list[int], raws: list[bytes], source: str, options: Options
) -> Decoded:
    """Any trades table with a column mapping → ``trades``; a row a column cannot be read from is
    a reject naming the column."""
    m = options.mapping
    missing = [theirs for ours, theirs in m.items() if theirs not in frame.columns]
    if missing:
        raise ArchiveFormatError(source, f"mapped column(s) not in the file: {', '.join(missing)}")
    n = len(frame)

    def col(ours: str, constant: str) -> npt.NDArray[Any]:
        if ours in m:
            return frame[m[ours]].astype(str).str.strip().to_numpy(dtype=object)
        if not constant:
            raise ArchiveFormatError(source, f"map a {ours} column or give --{ours.replace('_', '-')}")
        return np.full(n, constant, dtype=object)

    ts = _ts_column(frame[m["ts"]], options.ts_unit)
    price = pd.to_numeric(frame[m["price"]], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    qty = pd.to_numeric(frame[m["quantity"]], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    side = np.array([_SIDE_WORDS.get(str(v).strip().lower(), "") for v in frame[m["side"]]], dtype=object)
    ids = frame[m["trade_id"]].astype(str).str.strip().to_numpy(dtype=object)
    symbol, exchange = col("symbol", options.symbol), col("exchange", options.exchange)
    market = col("market_type", options.market_type or "spot")
    rejects: list[Reject] = []
    keep = _split(
        {
            "ts: not a time after 2009": ts < MIN_TS_NS,
            "price/quantity: not a number": np.isnan(price) | np.isnan(qty),
            "side: not buy/sell/b/s": side == "",
            "trade_id: empty": (ids == "") | (ids == "nan"),
        },
        list(zip(numbers, raws, strict=True)),
        rejects,
    )
    idx = np.arange(n) if isinstance(keep, slice) else np.flatnonzero(keep)
    batch = TradeBatch.from_columns(
        ts_ns=ts[idx], exchange=exchange[idx], market_type=market[idx], symbol=symbol[idx], price=price[idx],
        quantity=qty[idx], side=side[idx], trade_id=ids[idx],
    )  # fmt: skip
    return _trades(batch, rejects, [numbers[i] for i in idx], [raws[i] for i in idx])


def decode_csv_trades(lines: Lines, source: str, options: Options | None = None) -> Decoded:
    """CSV lines with a header (``options.header``, read by the runner) and a column mapping."""
    import csv

    options = options or Options()
    if not options.header:
        raise ArchiveFormatError(source, "a CSV trades file needs a header line")
    rows: list[list[str]] = []
    numbers: list[int] = []
    raws: list[bytes] = []
    rejects: list[Reject] = []
    width = len(options.header)
    for number, raw in lines:
        if not raw.strip() or number == 1:  # the header
            continue
        try:
            (cells,) = list(csv.reader([raw.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error, ValueError) as exc:
            rejects.append(Reject(number, f"not a CSV row: {exc}", raw))
            continue
        if len(cells) != width:
            rejects.append(Reject(number, f"expected {width} columns (the header's), got {len(cells)}", raw))
            continue
        rows.append(cells)
        numbers.append(number)
        raws.append(raw)
    frame = pd.DataFrame(rows, columns=list(options.header), dtype=object)
    out = decode_mapped_trades(frame, numbers, raws, source, options)
    out.rejects = sorted(out.rejects + rejects, key=lambda r: r.line)
    return out


def decode_parquet_trades(frame: pd.DataFrame, first_row: int, source: str, options: Options) -> Decoded:
    """Rows of a Parquet trades file (row numbers 1-based) with a column mapping."""
    numbers = list(range(first_row, first_row + len(frame)))
    raws = [msgspec.json.encode({k: str(v) for k, v in row.items()}) for row in frame.to_dict("records")]
    return decode_mapped_trades(frame, numbers, raws, source, options)


DECODERS = {
    "swing": decode_swing,
    "scalp": decode_scalp,
    "gaps": decode_gaps,
    "binance_trades": decode_binance_trades,
    "recording": decode_recording,
    "csv_trades": decode_csv_trades,
}
