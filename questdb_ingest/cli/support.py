"""What every ``pumpwatch`` command group shares: the consoles and the error handling.

A separate module so groups defined elsewhere (``rollout``, ``query``) behave the same run
under ``pumpwatch`` or on their own, without importing ``cli`` (which imports them)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg
from click.exceptions import NoArgsIsHelpError
from rich.console import Console
from rich.markup import escape

from ..config import Settings, load_settings
from ..errors import ConfigError, DataLossError, PumpwatchError

# Without a terminal (pipes, systemd, CI logs) rich would cut tables at 80 columns: give it room
# for any table's natural width instead (rich tables never grow past what they need).
NO_TERMINAL_WIDTH = 400
console = Console() if sys.stdout.isatty() else Console(width=NO_TERMINAL_WIDTH)
err_console = Console(stderr=True, soft_wrap=True)

# The ranges of the numeric flags: click refuses a value outside with one usage line naming the
# flag and exit 2, before the command does any work (``--workers -1`` used to end in a traceback).
COUNT = click.IntRange(min=1)  # rows, trades, symbols, rounds, repeats: at least one
NON_NEGATIVE_INT = click.IntRange(min=0)
WORKERS = click.IntRange(0, 256)  # as sender.workers: 0 = one per two cores
PORT = click.IntRange(1, 65535)
PORT_OR_ANY = click.IntRange(0, 65535)  # 0 = any free port
SECONDS = click.FloatRange(min=0, min_open=True)  # a duration or period: must be > 0
NON_NEGATIVE = click.FloatRange(min=0)  # a length, pace or rate where 0 means none
RATE = NON_NEGATIVE  # trades/s; 0 = none
POSITIVE_RATE = click.FloatRange(min=0, min_open=True)
PERCENT = click.FloatRange(0, 100)  # a share of a disk, in percent


def cli_settings(ctx: click.Context, **sections: dict[str, Any] | None) -> Settings:
    """Settings as every command loads them: the main group's ``--config`` and ``--state-dir``, then
    env and files, then this command's flags (``None`` values are ignored)."""
    obj = ctx.find_root().obj if isinstance(ctx.find_root().obj, dict) else {}
    overrides: dict[str, dict[str, Any]] = {k: v for k, v in sections.items() if v}
    if obj.get("state_dir"):
        overrides.setdefault("state", {})["dir"] = obj["state_dir"]
    log_flags = {k: v for k, v in (obj.get("log") or {}).items() if v is not None}
    if log_flags:
        overrides["log"] = {**overrides.get("log", {}), **log_flags}
    settings = load_settings(obj.get("config"), overrides=overrides)
    configure_logging(settings)
    return settings


def configure_logging(settings: Settings, process: str = "main") -> None:
    """This process's log lines per ``[log]`` and the flags; the sender's workers inherit it."""
    from ..logs import LogSpec, configure

    lg = settings.log
    configure(LogSpec(level=lg.level.lower(), format=lg.format.lower(), file=lg.file, process=process))


@contextmanager
def typed_errors() -> Iterator[None]:
    """Typed errors become one red line instead of a traceback: exit 2 for invalid configuration
    (the message names the key), 4 when trades were received but not stored (``DataLossError``, the
    message has the count), 1 for anything else, with a hint to start QuestDB when it is unreachable
    (a refused login is a ``QuestDBAuthError``, "authentication failed": starting it would not help)."""
    try:
        yield
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


def run_standalone(command: click.Command, args: Any, kwargs: dict[str, Any]) -> Any:
    """``click``'s standalone ``main``, but a usage error (a flag out of range, a missing argument)
    is one ``error:`` line naming the flag, exit 2 — not click's usage block around it."""
    main: Any = click.Command.main  # the base implementation, whichever subclass ``command`` is
    standalone = kwargs.pop("standalone_mode", True)
    if not standalone:
        return main(command, *args, standalone_mode=False, **kwargs)
    try:
        rv = main(command, *args, standalone_mode=False, **kwargs)
    except NoArgsIsHelpError as exc:  # a bare group: its help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "pumpwatch"
        err_console.print(
            f"[bold red]error:[/] {escape(exc.format_message())} (see `{escape(where)} --help`)", highlight=False
        )
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        err_console.print("Aborted!", highlight=False)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)  # --help and --version return their exit code


class _TypedErrors(click.Command):
    """Typed errors as ``typed_errors`` says, usage errors in one line (``run_standalone``)."""

    def invoke(self, ctx: click.Context) -> Any:
        with typed_errors():
            return super().invoke(ctx)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        return run_standalone(self, args, kwargs)


class ErrorGroup(_TypedErrors, click.Group):
    """The ``pumpwatch`` group and its sub-groups."""


class ErrorCommand(_TypedErrors):
    """A command outside an ``ErrorGroup`` (``replay-server`` run on its own) with the same exits."""


def _option_error(exc: ConfigError, option: str) -> click.BadParameter:
    return click.BadParameter(str(exc).split(": ", 1)[-1], param_hint=option)


def parse_duration_ns(value: str, option: str) -> int:
    """An option's duration (the one grammar, ``timefmt``) as ns; a usage error naming the option."""
    from ..timefmt import duration_ns

    try:
        return duration_ns(value, option)
    except ConfigError as exc:
        raise _option_error(exc, option) from None


def parse_time_ns(value: str, option: str) -> int:
    """An option's time (ns, ISO-8601, or a duration ago) as epoch ns; a usage error naming the option."""
    from ..timefmt import parse_time_ns as parse

    try:
        return parse(value, option)
    except ConfigError as exc:
        raise _option_error(exc, option) from None
