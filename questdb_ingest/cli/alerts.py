"""``pumpwatch alerts test``: post one test alert through the configured webhook and say what it
answered, so an operator knows the Slack/Telegram/JSON hook works before a feed goes down.

Registered in ``cli.py`` with ``main.add_command(alerts)``; it also runs standalone. The post goes
through ``ops.alerts.WebhookClient`` — the format, timeout and retries the service uses.
"""

from __future__ import annotations

import json
import socket

import click

from ..config import ALERT_FORMATS
from ..errors import AlertDeliveryError, ConfigError
from .support import ErrorGroup, cli_settings, console, err_console


@click.group(cls=ErrorGroup)
def alerts() -> None:
    """Operator alerts: log line, /api/alerts and the [alerts] webhook."""


@alerts.command("test")
@click.option("--url", default=None, help="Post here instead of alerts.webhook_url.")
@click.option("--format", "fmt", type=click.Choice(ALERT_FORMATS), default=None, help="Instead of alerts.format.")
@click.option("--chat-id", default=None, help="Instead of alerts.telegram_chat_id (telegram format).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def alerts_test(ctx: click.Context, url: str | None, fmt: str | None, chat_id: str | None, as_json: bool) -> None:
    """Send one test alert (kind alerts.test, severity info) and report the HTTP status; exit 1 when
    the webhook did not take it after alerts.retries, exit 2 when no webhook is configured."""
    from ..ops.alerts import Alert, WebhookClient

    settings = cli_settings(ctx, alerts={"webhook_url": url, "format": fmt, "telegram_chat_id": chat_id})
    cfg = settings.alerts
    if not cfg.webhook_url:
        raise ConfigError(
            "alerts.webhook_url",
            "no webhook configured: set [alerts] webhook_url (or PUMPWATCH_ALERTS_WEBHOOK_URL, or --url)",
        )
    client = WebhookClient(cfg)
    alert = Alert(
        "alerts.test",
        "info",
        f"test alert from pumpwatch on {socket.gethostname()}: this webhook receives the operator alerts",
        key="test",
        details={"format": cfg.format},
    )
    if as_json:
        result = client.post(alert)
    else:
        with err_console.status(f"posting a test alert to {client.where} ({cfg.format})…"):
            result = client.post(alert)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "status": result.status,
                    "attempts": result.attempts,
                    "error": result.error,
                    "elapsed_s": round(result.elapsed_s, 3),
                    "webhook": client.where,
                    "format": cfg.format,
                    "body": client.body(alert),
                },
                indent=2,
            )
        )
    elif result.ok:
        console.print(
            f"[green]ok[/]: {client.where} ({cfg.format}) answered HTTP {result.status} "
            f"after {result.attempts} attempt(s) in {result.elapsed_s:.2f} s",
            highlight=False,
        )
    if not result.ok:
        raise AlertDeliveryError(client.where, result.status, result.error, result.attempts)
