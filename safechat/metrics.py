"""SafeChat's own Prometheus metrics: what the code counts as it runs.

Served, with django-prometheus' request metrics and the series read at scrape time
(``safechat.monitoring``), at ``/metrics`` behind a bearer token. No label carries
content, a name or the id of a room, person or file: labels are fixed vocabularies of
the code (an audit action, a scan verdict, a limit's name, a cache's name).

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set in the environment before a process
starts, every process (each web process, the worker and its pool, beat) writes its
values to files there and the web process serving ``/metrics`` adds them up
(prometheus_client's multiprocess mode; docs/operations.md). Imports nothing of the
project.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

OPEN_SOCKETS = Gauge(
    "safechat_open_sockets",
    "WebSocket connections accepted and not yet closed.",
    multiprocess_mode="livesum",
)
POSTS = Counter("safechat_posts", "Messages posted (committed), by any channel.")
DELIVERIES = Counter(
    "safechat_deliveries", "New messages delivered to open sockets (one per receiving socket)."
)
POST_TO_DELIVERY = Histogram(
    "safechat_post_to_delivery_seconds",
    "From a message's creation in the database to its frame being sent to a socket.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CHANNEL_LAYER_ERRORS = Counter(
    "safechat_channel_layer_errors",
    "Channel-layer (Redis) operations that failed: a broadcast sent, a socket's receive or join.",
    ["operation"],
)
RATE_LIMIT_REFUSALS = Counter(
    "safechat_rate_limit_refusals",
    "Events refused by a rate limit, by the limit's name.",
    ["limit"],
)
AUDIT_APPENDS = Counter(
    "safechat_audit_appends", "Audit events appended (committed), by action.", ["action"]
)
KEY_CACHE = Counter(
    "safechat_key_cache_requests",
    "Look-ups in the in-memory caches of unwrapped keys, by cache and result (hit or miss).",
    ["cache", "result"],
)
RETENTION_RUNS = Counter(
    "safechat_retention_runs", "Retention runs ended, by outcome.", ["outcome"]
)
EXPORT_RUNS = Counter(
    "safechat_export_runs", "eDiscovery export runs ended, by outcome.", ["outcome"]
)
SCAN_VERDICTS = Counter(
    "safechat_malware_scan_verdicts", "Malware-scan verdicts on uploaded files.", ["verdict"]
)

# Audit actions that also count in a series of their own: (counter, its label, or None).
_BY_ACTION: dict[str, tuple[Counter, str | None]] = {
    "message.posted": (POSTS, None),
    "retention.run.finished": (RETENTION_RUNS, "finished"),
    "retention.run.failed": (RETENTION_RUNS, "failed"),
    "retention.run.interrupted": (RETENTION_RUNS, "interrupted"),
    "export.finished": (EXPORT_RUNS, "finished"),
    "export.failed": (EXPORT_RUNS, "failed"),
    "file.scan.clean": (SCAN_VERDICTS, "clean"),
    "file.scan.infected": (SCAN_VERDICTS, "infected"),
}

# Series with labels are served from the start, at 0, for the values known in advance.
for _counter, _label in _BY_ACTION.values():
    if _label is not None:
        _counter.labels(_label)
for _operation in ("send", "receive", "join"):
    CHANNEL_LAYER_ERRORS.labels(_operation)


def action_committed(action: str) -> None:
    """An audit event of ``action`` (an ``AuditAction`` value) committed."""
    AUDIT_APPENDS.labels(action).inc()
    counted = _BY_ACTION.get(action)
    if counted is not None:
        counter, label = counted
        (counter if label is None else counter.labels(label)).inc()


def delivered(*, created_at: str) -> None:
    """A new message's frame was sent to a socket; ``created_at`` is its ISO 8601 time."""
    DELIVERIES.inc()
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return
    POST_TO_DELIVERY.observe(max(0.0, (datetime.now(UTC) - created).total_seconds()))


def channel_layer_failed(operation: str) -> None:
    """A channel-layer ``operation`` (``send``, ``receive``, ``join``) failed."""
    CHANNEL_LAYER_ERRORS.labels(operation).inc()


def rate_limit_refused(limit: str) -> None:
    """The rate limit named ``limit`` (a name in the code, never a key's value) refused."""
    RATE_LIMIT_REFUSALS.labels(limit).inc()


def key_cache_looked_up(cache: str, *, hit: bool) -> None:
    """A look-up in the key cache named ``cache`` hit or missed."""
    KEY_CACHE.labels(cache, "hit" if hit else "miss").inc()
