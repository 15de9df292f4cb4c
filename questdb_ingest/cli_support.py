"""What every ``pumpwatch`` command group shares: the consoles and the error handling.

A separate module so groups defined elsewhere (``rollout``, ``query``) behave the same run
under ``pumpwatch`` or on their own, without importing ``cli`` (which imports them)."""

from __future__ import annotations

import sys
from typing import Any

import click
import psycopg
from rich.console import Console
from rich.markup import escape

from .config import Settings, load_settings
from .errors import ConfigError, DataLossError, PumpwatchError

# Pipes and CI logs get a width that fits the tables instead of rich's 80-column fallback.
console = Console() if sys.stdout.isatty() else Console(width=120)
err_console = Console(stderr=True, soft_wrap=True)


def cli_settings(ctx: click.Context, **sections: dict[str, Any] | None) -> Settings:
    """Settings as every command loads them: the main group's ``--config`` and ``--state-dir``, then
    env and files, then this command's flags (``None`` values are ignored)."""
    obj = ctx.find_root().obj if isinstance(ctx.find_root().obj, dict) else {}
    overrides: dict[str, dict[str, Any]] = {k: v for k, v in sections.items() if v}
    if obj.get("state_dir"):
        overrides.setdefault("state", {})["dir"] = obj["state_dir"]
    return load_settings(obj.get("config"), overrides=overrides)


class ErrorGroup(click.Group):
    """Typed errors become one red line instead of a traceback: exit 2 for invalid configuration
    (the message names the key), 4 when trades were received but not stored (``DataLossError``, the
    message has the count), 1 for anything else, with a hint to start QuestDB when it is unreachable
    (a refused login is a ``QuestDBAuthError``, "authentication failed": starting it would not help)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            sys.exit(2)
        except DataLossError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            sys.exit(4)
        except PumpwatchError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            sys.exit(1)
        except psycopg.OperationalError as exc:
            err_console.print(
                f"[bold red]error:[/] cannot reach QuestDB over PGWire: {escape(str(exc))}".rstrip()
                + "\n(start it with `pumpwatch questdb start`)",
                highlight=False,
            )
            sys.exit(1)
