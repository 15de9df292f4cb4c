"""Print an ``export`` line for each of four distinct free loopback ports for QuestDB.

CI starts its own QuestDB on them so that a server already holding the defaults (9000, 8812,
9009, 9003) on the same machine cannot make the run fail or, worse, answer in its place.
"""

from __future__ import annotations

import socket

NAMES = (
    "PUMPWATCH_QUESTDB_HTTP_PORT",
    "PUMPWATCH_QUESTDB_PG_PORT",
    "PUMPWATCH_QUESTDB_ILP_TCP_PORT",
    "PUMPWATCH_QUESTDB_HEALTH_PORT",
)


def main() -> None:
    socks = []
    try:
        for _ in NAMES:  # all bound at once, so the four are distinct
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for name, s in zip(NAMES, socks, strict=True):
            print(f"export {name}={s.getsockname()[1]}")
    finally:
        for s in socks:
            s.close()


if __name__ == "__main__":
    main()
