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

from .errors import ConfigError, PumpwatchError

# Pipes and CI logs get a width that fits the tables instead of rich's 80-column fallback.
console = Console() if sys.stdout.isatty() else Console(width=120)
err_console = Console(stderr=True, soft_wrap=True)


class ErrorGroup(click.Group):
    """Typed errors become one red line instead of a traceback: exit 2 for invalid configuration
    (the message names the key), 1 for anything else, with a hint when QuestDB is unreachable."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            sys.exit(2)
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
