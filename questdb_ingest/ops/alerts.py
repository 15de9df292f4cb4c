"""One alert path: every part that needs an operator's attention (retention, backups, rollback,
spool alarms, dead-letter surges, feeds down) raises an ``Alert`` through an ``AlertSink``.

The sink the service wires is the ``AlertDispatcher``: it logs the alert (logger
``questdb_ingest.alerts``), keeps it for ``/api/alerts`` and posts it to ``alerts.webhook_url``
(JSON, Slack or Telegram body) from a thread of its own, deduplicated by ``Alert.dedupe_key`` and
rate-limited, so a flapping feed never floods a channel and a dead webhook never stalls a caller.
Parts take a sink so tests can hand them a ``ListSink``.

``FeedDownWatch``, ``SurgeWatch`` and ``SpoolWatch`` (together: ``Watches``) turn the plain values
the service samples (feed connected?, dead-letter totals, spooled bytes) into alerts; pure logic
with the caller's clock, so they are tested without waiting.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from ..timefmt import iso

if TYPE_CHECKING:
    from ..config import AlertSettings

Severity = Literal["info", "warning", "critical"]

log = logging.getLogger("questdb_ingest.alerts")

SERVICE = "pumpwatch"
RATE_WINDOW_S = 60.0  # alerts.rate_limit counts posts in this sliding window
LEVELS: dict[str, int] = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
_DEDUPE_PRUNE_AT = 4096  # dedupe keys remembered before the expired ones are forgotten
_TELEGRAM_MAX = 4096  # Bot API sendMessage text limit
_SLACK_SECTION_MAX = 3000  # Block Kit section text limit
_SLACK_FIELD_MAX = 2000
_SLACK_FIELDS_MAX = 10


@dataclass(frozen=True)
class Alert:
    """What happened, how bad, and the key alerts are deduplicated by (``kind`` when empty)."""

    kind: str  # e.g. "retention.emergency", "backup.failed", "feed.down", "spool.alarm"
    severity: Severity
    message: str
    key: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    ts_ns: int = field(default_factory=time.time_ns)

    @property
    def dedupe_key(self) -> str:
        return f"{self.kind}:{self.key}" if self.key else self.kind


class AlertSink(Protocol):
    """Anything that takes alerts; ``emit`` never raises and never blocks on the network."""

    def emit(self, alert: Alert) -> None: ...


class ListSink:
    """Keeps every alert in a list (tests, and the ``--dry-run`` of commands)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)


# --------------------------------------------------------------------------- webhook bodies
def _repeated_text(repeated: int) -> str:
    if repeated <= 0:
        return ""
    return f" (repeated {repeated} time{'s' if repeated != 1 else ''} since the last post)"


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn reads ``&``, ``<`` and ``>`` as markup: they must be entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_icon(severity: str) -> str:
    return {"info": ":information_source:", "warning": ":warning:"}.get(severity, ":rotating_light:")


def json_body(alert: Alert, repeated: int, host: str) -> dict[str, Any]:
    """The ``json`` format: every field of the alert, for a receiver of one's own."""
    return {
        "kind": alert.kind,
        "severity": alert.severity,
        "message": alert.message,
        "key": alert.key,
        "details": alert.details,
        "ts": iso(alert.ts_ns),
        "host": host,
        "service": SERVICE,
        "repeated": repeated,
    }


def slack_body(alert: Alert, repeated: int, host: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification) and Block Kit ``blocks``."""
    sev, rep = alert.severity.upper(), _repeated_text(repeated)
    context = f"{SERVICE} on {host} · {iso(alert.ts_ns)}" + (f" · key {alert.key}" if alert.key else "")
    head = f"{_slack_icon(alert.severity)} *{sev}* `{_slack_escape(alert.kind)}`"
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _trim(f"{head}\n{_slack_escape(alert.message + rep)}", _SLACK_SECTION_MAX),
            },
        }
    ]
    if alert.details:
        fields = [
            {"type": "mrkdwn", "text": _trim(f"*{_slack_escape(str(k))}*\n{_slack_escape(str(v))}", _SLACK_FIELD_MAX)}
            for k, v in list(alert.details.items())[:_SLACK_FIELDS_MAX]
        ]
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(context)}]})
    text = _trim(_slack_escape(f"[{sev}] {alert.kind}: {alert.message}{rep}"), _SLACK_SECTION_MAX)
    return {"text": text, "blocks": blocks}


def telegram_body(alert: Alert, repeated: int, host: str, chat_id: str) -> dict[str, Any]:
    """A Bot API ``sendMessage`` body. Plain text (no ``parse_mode``): an alert's message may hold
    any character, and Markdown/HTML that fails to parse is refused with a 400 — a lost alert."""
    lines = [f"[{alert.severity.upper()}] {alert.kind}", alert.message + _repeated_text(repeated)]
    lines += [f"{k}: {v}" for k, v in alert.details.items()]
    lines.append(f"{SERVICE} on {host} · {iso(alert.ts_ns)}" + (f" · key {alert.key}" if alert.key else ""))
    return {
        "chat_id": chat_id,
        "text": _trim("\n".join(lines), _TELEGRAM_MAX),
        "disable_notification": alert.severity == "info",
    }


def webhook_body(fmt: str, alert: Alert, repeated: int, host: str, chat_id: str = "") -> dict[str, Any]:
    """The body ``alerts.format`` names (json | slack | telegram)."""
    if fmt == "slack":
        return slack_body(alert, repeated, host)
    if fmt == "telegram":
        return telegram_body(alert, repeated, host, chat_id)
    return json_body(alert, repeated, host)


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/…``: the path of a Slack or Telegram webhook URL is its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…" if parts.netloc else "(no URL)"


# --------------------------------------------------------------------------- one post
@dataclass(frozen=True)
class Delivery:
    """How one post ended: ``status`` is the last HTTP status (None when nothing answered)."""

    ok: bool
    status: int | None
    attempts: int
    error: str = ""
    elapsed_s: float = 0.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would be replayed as a body-less GET by urllib: report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retryable(status: int | None) -> bool:
    """No answer, a 5xx, 408 or 429 may pass later; any other refusal would be refused again."""
    return status is None or status >= 500 or status in (408, 429)


class WebhookClient:
    """Posts alert bodies to ``alerts.webhook_url`` with ``alerts.timeout`` and ``alerts.retries``.

    Standard-library ``urllib.request``, not aiohttp: the dispatcher posts from a plain thread, so
    an event loop would be one more thing to run and stop; one blocking request with a socket
    timeout per attempt is all a webhook needs, and there is no dependency to keep. Proxies come
    from the usual ``https_proxy``/``no_proxy`` environment; redirects are not followed (see
    ``_NoRedirect``). The timeout bounds each socket operation, so a hung receiver costs at most
    ``timeout`` per attempt — in the dispatcher's thread, never the caller's."""

    def __init__(self, settings: AlertSettings, host: str | None = None) -> None:
        self.url = settings.webhook_url
        self.format = settings.format
        self.chat_id = settings.telegram_chat_id
        self.timeout = settings.timeout
        self.retries = settings.retries
        self.retry_initial = settings.retry_initial
        self.retry_max = settings.retry_max
        self.host = host or socket.gethostname()
        self._opener = urllib.request.build_opener(_NoRedirect())

    @property
    def where(self) -> str:
        """The URL without its secret, for logs and messages."""
        return redact_url(self.url)

    def body(self, alert: Alert, repeated: int = 0) -> dict[str, Any]:
        return webhook_body(self.format, alert, repeated, self.host, self.chat_id)

    def post(self, alert: Alert, repeated: int = 0, abort: threading.Event | None = None) -> Delivery:
        """Post the alert, retrying with the sender's backoff; never raises. ``abort`` (set by a
        stop that ran out of time) ends the retries early."""
        # The sender's one backoff helper; imported here because the sender package is heavy and
        # its parts may raise alerts through this module (no import cycle at load time).
        from ..sender.worker import backoff_delay

        started = time.monotonic()
        data = json.dumps(self.body(alert, repeated), ensure_ascii=False, default=str).encode("utf-8")
        status: int | None = None
        error = "not attempted"
        attempts = 0
        for attempt in range(1, self.retries + 2):
            if abort is not None and abort.is_set():
                break
            attempts = attempt
            status, error = self._attempt(data)
            if status is not None and 200 <= status < 300:
                return Delivery(True, status, attempts, "", time.monotonic() - started)
            if not _retryable(status) or attempt > self.retries:
                break
            delay = backoff_delay(attempt, self.retry_initial, self.retry_max)
            if abort is not None:
                if abort.wait(delay):
                    break
            else:
                time.sleep(delay)
        return Delivery(False, status, attempts, error, time.monotonic() - started)

    def _attempt(self, data: bytes) -> tuple[int | None, str]:
        request = urllib.request.Request(  # noqa: S310 - alerts.webhook_url is validated to be http(s)
            self.url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": f"{SERVICE}-alerts"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65_536)
                return int(response.status), ""
        except urllib.error.HTTPError as exc:
            with exc:
                said = exc.read(300).decode("utf-8", "replace").strip()
            return exc.code, f"HTTP {exc.code} {exc.reason}" + (f": {said}" if said else "")
        except urllib.error.URLError as exc:
            return None, f"no answer: {exc.reason}"
        except TimeoutError:
            return None, f"no answer within {self.timeout:g} s (alerts.timeout)"
        except (OSError, ValueError) as exc:  # connection reset mid-answer, a malformed status line
            return None, f"no usable answer: {exc}"


# --------------------------------------------------------------------------- the dispatcher
@dataclass
class _Entry:
    """One alert as ``/api/alerts`` shows it; ``webhook`` is updated when its post ends."""

    alert: Alert
    repeated: int = 0
    webhook: str = "off"  # off | queued | sent | failed | suppressed | rate_limited | dropped
    status: int | None = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        a = self.alert
        return {
            "kind": a.kind,
            "severity": a.severity,
            "message": a.message,
            "key": a.key,
            "details": dict(a.details),
            "ts": iso(a.ts_ns),
            "ts_ns": a.ts_ns,
            "repeated": self.repeated,
            "webhook": self.webhook,
            "status": self.status,
            "error": self.error,
        }


@dataclass
class _Seen:
    posted_at: float
    repeats: int = 0


class AlertDispatcher:
    """The ``AlertSink`` the service wires: log line, bounded history, webhook post.

    ``emit`` takes a lock for a few dictionary operations, logs, and hands the post to a bounded
    queue; it never waits for the network and never raises. Per ``Alert.dedupe_key`` one post per
    ``alerts.dedupe_window`` (the repeats are counted and said in the next post of that key);
    at most ``alerts.rate_limit`` posts per minute (the excess is logged and kept, and an
    ``alerts.rate_limited`` summary says how many were held back: at the first, then at most once
    a minute, and at stop). A full queue drops the post (counted), never the log line or the
    history entry.

    ``clock`` (monotonic seconds) drives dedupe and rate limit, so tests inject their own time.
    """

    def __init__(
        self,
        settings: AlertSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        host: str | None = None,
        queue_size: int = 1000,
        tick: float = 1.0,
    ) -> None:
        self.settings = settings
        self.client = WebhookClient(settings, host) if settings.webhook_url else None
        self._clock = clock
        self._queue_size = max(1, queue_size)
        self._tick = tick  # the idle thread looks this often for a rate-limit summary that is due
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._history: deque[_Entry] = deque(maxlen=settings.history)
        self._queue: deque[_Entry] = deque()
        self._seen: dict[str, _Seen] = {}
        self._posts: deque[float] = deque()
        self._held_back = 0  # rate-limited since the last summary
        self._summary_at: float | None = None
        self._counts = dict.fromkeys(("emitted", "sent", "failed", "suppressed", "rate_limited", "dropped"), 0)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._abort = threading.Event()

    # -- lifecycle
    def start(self) -> None:
        """Start the posting thread (no thread without a webhook); alerts emitted before are posted."""
        with self._lock:
            if self.client is None or self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="alerts-webhook", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Post what is queued within ``timeout`` seconds; True when everything queued was delivered
        (or failed for good). What is still queued then is dropped (counted), and a post in flight
        is abandoned to its own ``alerts.timeout`` in the daemon thread."""
        with self._cond:
            summary = None if self._closed else self._summary_if_due(self._clock(), force=True)
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if summary is not None:
            _log(summary)
        if thread is not None:
            thread.join(max(0.0, timeout))
            if not thread.is_alive():
                return True
            self._abort.set()
        with self._lock:
            left = list(self._queue)
            self._queue.clear()
            for entry in left:
                entry.webhook = "dropped"
            self._counts["dropped"] += len(left)
        if thread is not None:
            log.warning(
                "alert webhook %s: not done %.1f s after stop, %d queued alert(s) dropped (it does not answer)",
                self.client.where if self.client else "-",
                timeout,
                len(left),
            )
        return not left and thread is None

    def __enter__(self) -> AlertDispatcher:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the sink
    def emit(self, alert: Alert) -> None:
        """Log, keep, and queue the post (unless deduplicated or over the rate limit); never raises."""
        try:
            with self._cond:
                self._counts["emitted"] += 1
                entries = self._decide(alert)
            for entry in entries:
                _log(entry)
        except Exception:  # a sink that raised would take its caller down with it
            log.exception("alert %s could not be handled", getattr(alert, "kind", alert))

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last ``limit`` alerts, newest first, as plain dicts (``/api/alerts``)."""
        with self._lock:
            entries = list(self._history)[::-1][: max(0, limit)]
            return [e.as_dict() for e in entries]

    def stats(self) -> dict[str, int]:
        """Counters since start (Prometheus): emitted, sent, failed, suppressed (dedupe), rate_limited,
        dropped (queue full or stopped); ``queued`` and ``kept`` are current sizes."""
        with self._lock:
            return {**self._counts, "queued": len(self._queue), "kept": len(self._history)}

    # -- decisions (under the lock)
    def _decide(self, alert: Alert) -> list[_Entry]:
        entry = _Entry(alert)
        if self.client is None:
            self._history.append(entry)
            return [entry]
        now = self._clock()
        if self._closed:
            entry.webhook = "dropped"
            self._counts["dropped"] += 1
            self._history.append(entry)
            return [entry]
        seen = self._seen.get(alert.dedupe_key)
        if seen is not None and now - seen.posted_at < self.settings.dedupe_window:
            seen.repeats += 1
            entry.webhook = "suppressed"
            self._counts["suppressed"] += 1
            self._history.append(entry)
            return [entry]
        self._history.append(entry)
        if self._take_slot(now):
            entry.repeated = seen.repeats if seen is not None else 0
            self._remember(alert.dedupe_key, now)
            self._enqueue(entry)
            return [entry]
        entry.webhook = "rate_limited"
        self._counts["rate_limited"] += 1
        self._held_back += 1
        summary = self._summary_if_due(now)
        return [entry] if summary is None else [entry, summary]

    def _take_slot(self, now: float) -> bool:
        while self._posts and now - self._posts[0] >= RATE_WINDOW_S:
            self._posts.popleft()
        if len(self._posts) >= self.settings.rate_limit:
            return False
        self._posts.append(now)
        return True

    def _summary_if_due(self, now: float, force: bool = False) -> _Entry | None:
        """The ``alerts.rate_limited`` summary of the alerts held back: at the first one, then at
        most once a minute (outside the limit, so the limit cannot hold back its own summary:
        at most ``rate_limit`` + 1 posts a minute); ``force`` at stop, so none goes unmentioned."""
        if not self._held_back:
            return None
        if not force and self._summary_at is not None and now - self._summary_at < RATE_WINDOW_S:
            return None
        self._summary_at = now
        n, self._held_back = self._held_back, 0
        summary = _Entry(
            Alert(
                "alerts.rate_limited",
                "warning",
                f"{n} alert(s) were not posted to the webhook: over alerts.rate_limit "
                f"({self.settings.rate_limit} per minute); every one is in the log and /api/alerts",
                details={"suppressed": n, "rate_limit": self.settings.rate_limit},
            )
        )
        self._history.append(summary)
        self._enqueue(summary)
        return summary

    def _remember(self, key: str, now: float) -> None:
        self._seen[key] = _Seen(now)
        if len(self._seen) > _DEDUPE_PRUNE_AT:
            window = self.settings.dedupe_window
            self._seen = {k: s for k, s in self._seen.items() if now - s.posted_at < window}

    def _enqueue(self, entry: _Entry) -> None:
        if len(self._queue) >= self._queue_size:
            entry.webhook = "dropped"
            self._counts["dropped"] += 1
            return
        entry.webhook = "queued"
        self._queue.append(entry)
        self._cond.notify()

    # -- the posting thread
    def _run(self) -> None:
        assert self.client is not None
        while True:
            summary = entry = None
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(self._tick)
                if self._queue:
                    entry = self._queue.popleft()
                elif self._closed:
                    return
                else:
                    summary = self._summary_if_due(self._clock())
            if summary is not None:
                _log(summary)
            if entry is None:
                continue
            try:
                result = self.client.post(entry.alert, entry.repeated, abort=self._abort)
            except Exception as exc:  # post() catches what urllib raises; this is the thread's last guard
                result = Delivery(False, None, 1, f"{type(exc).__name__}: {exc}")
            if not result.ok:  # logged before it is counted: a reader of stats() finds the line
                log.warning(
                    "alert webhook %s: %s not posted after %d attempt(s): %s",
                    self.client.where,
                    entry.alert.kind,
                    result.attempts,
                    result.error,
                )
            with self._lock:
                entry.status, entry.error = result.status, result.error
                entry.webhook = "sent" if result.ok else "failed"
                self._counts["sent" if result.ok else "failed"] += 1
            if self._abort.is_set():
                return


def _log(entry: _Entry) -> None:
    a = entry.alert
    extra = f" [{a.key}]" if a.key else ""
    details = " " + json.dumps(a.details, ensure_ascii=False, default=str) if a.details else ""
    log.log(
        LEVELS.get(a.severity, logging.WARNING),
        "%s%s: %s%s (webhook: %s)",
        a.kind,
        extra,
        a.message,
        details,
        entry.webhook,
    )


# --------------------------------------------------------------------------- watches
class FeedDownWatch:
    """``feed.down`` (warning) once a feed has been disconnected ``down_after`` seconds, and
    ``feed.recovered`` (info) when it connects again after that; a short drop says nothing (the
    connection layer reconnects on its own). ``now`` is any monotonic clock in seconds."""

    def __init__(self, sink: AlertSink, down_after: float) -> None:
        self.sink = sink
        self.down_after = down_after
        self._down_since: dict[str, float] = {}
        self._alerted: set[str] = set()

    def observe(self, feed: str, connected: bool, now: float) -> list[Alert]:
        """One sample of one feed; returns the alerts it emitted."""
        out: list[Alert] = []
        if connected:
            since = self._down_since.pop(feed, None)
            if feed in self._alerted and since is not None:
                self._alerted.discard(feed)
                down = now - since
                out.append(
                    Alert(
                        "feed.recovered",
                        "info",
                        f"{feed} is connected again after {down:.0f} s down",
                        key=feed,
                        details={"feed": feed, "down_s": round(down, 3)},
                    )
                )
        else:
            since = self._down_since.setdefault(feed, now)
            down = now - since
            if down >= self.down_after and feed not in self._alerted:
                self._alerted.add(feed)
                out.append(
                    Alert(
                        "feed.down",
                        "warning",
                        f"{feed} has been disconnected for {down:.0f} s "
                        f"(alerts.feed_down_after = {self.down_after:g} s)",
                        key=feed,
                        details={"feed": feed, "down_s": round(down, 3)},
                    )
                )
        for alert in out:
            self.sink.emit(alert)
        return out

    def observe_all(self, connected: Mapping[str, bool], now: float) -> list[Alert]:
        """One sample of every feed: name → connected."""
        return [a for feed, up in connected.items() for a in self.observe(feed, up, now)]

    def down(self, now: float) -> dict[str, float]:
        """Feeds disconnected now → for how many seconds."""
        return {feed: now - since for feed, since in self._down_since.items()}


class SurgeWatch:
    """``deadletter.surge`` (warning) when a running total (dead letters of one source) grows faster
    than ``per_minute``; once per surge, re-armed when the rate falls back. The rate is the increase
    since the last sample at or before a minute ago, per minute of that span (the raw increase while
    less than a minute is known). A total that goes down (a restarted counter) starts over.
    ``per_minute`` 0 turns it off."""

    def __init__(self, sink: AlertSink, per_minute: int, kind: str = "deadletter.surge", what: str = "dead letters"):
        self.sink = sink
        self.per_minute = per_minute
        self.kind = kind
        self.what = what
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._surging: set[str] = set()

    def observe(self, total: int, now: float, source: str = "all") -> list[Alert]:
        """One sample of ``source``'s running total; returns the alerts it emitted."""
        if self.per_minute <= 0:
            return []
        samples = self._samples.setdefault(source, deque())
        if samples and total < samples[-1][1]:
            samples.clear()
            self._surging.discard(source)
        samples.append((now, total))
        while len(samples) > 1 and samples[1][0] <= now - RATE_WINDOW_S:  # one baseline, none older
            samples.popleft()
        since, base = samples[0]
        increase, span = total - base, now - since
        rate = increase * RATE_WINDOW_S / span if span > RATE_WINDOW_S else float(increase)
        if rate <= self.per_minute:
            self._surging.discard(source)
            return []
        if source in self._surging:
            return []
        self._surging.add(source)
        alert = Alert(
            self.kind,
            "warning",
            f"{increase:,} {self.what} from {source} in the last {span:.0f} s "
            f"(alerts.dead_letter_surge = {self.per_minute}/min)",
            key=source,
            details={"source": source, "increase": increase, "per_minute": round(rate, 1), "total": total},
        )
        self.sink.emit(alert)
        return [alert]


class SpoolWatch:
    """``spool.alarm``: a warning when the spool holds ``alarm_bytes`` or more (0: never for size
    alone), critical when it is full (``SpoolFullError``: producers are being slowed); each once per
    episode, then ``spool.cleared`` (info) when it is below the mark and not full again."""

    def __init__(self, sink: AlertSink, alarm_bytes: int) -> None:
        self.sink = sink
        self.alarm_bytes = alarm_bytes
        self._raised: set[str] = set()  # "size", "full"

    def observe(self, spooled_bytes: int, *, full: bool = False, limit_bytes: int = 0) -> list[Alert]:
        """One sample: bytes in the spool now, and whether it refused a record for lack of room."""
        out: list[Alert] = []
        details: dict[str, Any] = {"spooled_bytes": spooled_bytes}
        if limit_bytes:
            details["limit_bytes"] = limit_bytes
        if full and "full" not in self._raised:
            self._raised.add("full")
            out.append(
                Alert(
                    "spool.alarm",
                    "critical",
                    f"the spool is full ({spooled_bytes:,} bytes): rows stay in memory and producers are slowed "
                    "until QuestDB is back or sender.spool_max_bytes is raised",
                    key="full",
                    details=details,
                )
            )
        over = self.alarm_bytes > 0 and spooled_bytes >= self.alarm_bytes
        if over and "size" not in self._raised:
            self._raised.add("size")
            out.append(
                Alert(
                    "spool.alarm",
                    "warning",
                    f"the spool holds {spooled_bytes:,} bytes (alerts.spool_alarm_bytes = {self.alarm_bytes:,}): "
                    "QuestDB is not confirming writes",
                    key="size",
                    details=details,
                )
            )
        if not full and not over and self._raised:
            self._raised.clear()
            out.append(Alert("spool.cleared", "info", f"the spool is back to {spooled_bytes:,} bytes", details=details))
        for alert in out:
            self.sink.emit(alert)
        return out


class Watches:
    """The three watches from ``[alerts]``, for one call per snapshot of the service."""

    def __init__(self, settings: AlertSettings, sink: AlertSink) -> None:
        self.feeds = FeedDownWatch(sink, settings.feed_down_after)
        self.dead_letters = SurgeWatch(sink, settings.dead_letter_surge)
        self.spool = SpoolWatch(sink, settings.spool_alarm_bytes)

    def observe(
        self,
        now: float,
        *,
        feeds: Mapping[str, bool] | None = None,
        dead_letters: Mapping[str, int] | None = None,
        spool_bytes: int | None = None,
        spool_full: bool = False,
        spool_limit_bytes: int = 0,
    ) -> list[Alert]:
        """Feed name → connected, source → dead-letter total, spooled bytes; what is None is skipped."""
        out = self.feeds.observe_all(feeds or {}, now)
        for source, total in (dead_letters or {}).items():
            out += self.dead_letters.observe(total, now, source)
        if spool_bytes is not None:
            out += self.spool.observe(spool_bytes, full=spool_full, limit_bytes=spool_limit_bytes)
        return out
