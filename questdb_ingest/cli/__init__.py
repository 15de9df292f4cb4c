"""``pumpwatch``: the command line (click + rich), one home for every command group and view.

``main`` is the root group (global options, ``questdb``, ``db``, ``demo``, ``load``, ``run``,
``record``); the other groups live in their own modules and are attached here. Domain packages
never import this package.
"""

from __future__ import annotations

from .alerts import alerts
from .archive import archive
from .backup import backup
from .bench import bench
from .compare import compare_group
from .main import main
from .query import query
from .replay import replay_server
from .retention import retention
from .rollout import rollout
from .top import top
from .verify import verify

for _group in (alerts, archive, backup, bench, compare_group, query, replay_server, retention, rollout, top, verify):
    main.add_command(_group)

__all__ = ["main"]
