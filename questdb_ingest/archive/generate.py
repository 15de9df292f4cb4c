"""Generated observer archives (seed 004's layout) for the tests and ``pumpwatch bench archive``.

Ticks at ``hz`` per symbol with a share dropped at random (so some minutes fall under the
coverage threshold), files that start off the minute (so a minute spans two files), swing bars
every 10 minutes and a gap ledger line per dropped run. Deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

_ENC = msgspec.json.Encoder()


def iso_ms(ns: int) -> str:
    """``2026-01-22T09:31:05.123Z`` (the observer's format)."""
    t = dt.datetime.fromtimestamp(ns // 1_000_000 / 1000, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(ns // 1_000_000) % 1000:03d}Z"


@dataclass(frozen=True)
class Generated:
    scalp_files: list[Path]
    swing_files: list[Path]
    gap_files: list[Path]
    ticks: int

    @property
    def files(self) -> list[Path]:
        return self.scalp_files + self.swing_files + self.gap_files


def generate(
    root: Path,
    *,
    start_ns: int,
    files: int = 4,
    file_seconds: float = 600.0,
    symbols: int = 3,
    hz: float = 2.0,
    drop: float = 0.15,
    session: str = "track_b_session",
    offset_seconds: float = 7.0,
    seed: int = 7,
) -> Generated:
    """``files`` consecutive scalp files of ``file_seconds`` each (the first starting
    ``offset_seconds`` after ``start_ns``'s minute), plus swing bars and the gap ledger."""
    rng = np.random.default_rng(seed)
    (root / "scalp").mkdir(parents=True, exist_ok=True)
    (root / "swing").mkdir(parents=True, exist_ok=True)
    (root / "system").mkdir(parents=True, exist_ok=True)
    names = [f"{100000 + 17 * i:06d}" for i in range(symbols)]
    step = int(1e9 / hz)
    t0 = start_ns - start_ns % 60_000_000_000 + int(offset_seconds * 1e9)
    per_file = int(file_seconds * hz)
    scalp: list[Path] = []
    swing: list[Path] = []
    gaps: dict[str, list[bytes]] = {}
    total = 0
    price = {s: 70_000.0 + 1000 * i for i, s in enumerate(names)}
    for f in range(files):
        first = t0 + f * per_file * step
        stamp = dt.datetime.fromtimestamp(first / 1e9, dt.UTC)
        path = root / "scalp" / f"{stamp:%Y%m%d_%H%M}.jsonl"
        lines: list[bytes] = []
        for k in range(per_file):
            ts = first + k * step
            for s in names:
                if rng.random() < drop:
                    continue
                price[s] = max(1.0, price[s] + float(rng.integers(-5, 6)))
                p = price[s]
                rec = {
                    "ts": iso_ms(ts + 3_000_000),
                    "event_time": iso_ms(ts),
                    "symbol": s,
                    "bid_price": p - 5,
                    "ask_price": p + 5,
                    "bid_size": int(rng.integers(1, 500)),
                    "ask_size": int(rng.integers(1, 500)),
                    "last_price": p,
                    "volume": int(rng.integers(1, 100)),
                    "session_id": session,
                    "mitigation_level": int(rng.integers(0, 2)),
                    "quality_flag": "normal",
                }
                lines.append(_ENC.encode(rec))
                total += 1
        path.write_bytes(b"\n".join(lines) + b"\n")
        scalp.append(path)
        bar = first  # the observer polls swing data once per file period
        spath = root / "swing" / f"{stamp:%Y%m%d_%H%M}.jsonl"
        rows = []
        for s in names:
            p = price[s]
            rows.append(
                _ENC.encode(
                    {
                        "ts": iso_ms(bar),
                        "session": "track_a_session",
                        "dataset": "track_a_swing",
                        "market": "kr_stocks",
                        "symbol": s,
                        "price": {"open": p - 10, "high": p + 20, "low": p - 30, "close": p},
                        "volume": int(rng.integers(1000, 100000)),
                        "bid_price": p - 5,
                        "ask_price": p + 5,
                        "source": "kis",
                    }
                )
            )
        spath.write_bytes(b"\n".join(rows) + b"\n")
        swing.append(spath)
        day = f"{stamp:%Y%m%d}"
        gap_start = first + per_file * step // 2
        gaps.setdefault(day, []).append(
            _ENC.encode(
                {
                    "timestamp": iso_ms(gap_start + 6_000_000_000),
                    "gap_start_ts": iso_ms(gap_start),
                    "gap_end_ts": iso_ms(gap_start + 5_000_000_000),
                    "gap_seconds": 5,
                    "scope": "scalp",
                    "reason": "ws_disconnect",
                    "session_id": session,
                }
            )
        )
    gap_files = []
    for day, rows in gaps.items():
        gpath = root / "system" / f"gap_{day}.jsonl"
        gpath.write_bytes(b"\n".join(rows) + b"\n")
        gap_files.append(gpath)
    return Generated(scalp, swing, gap_files, total)
