"""``/metrics``: SafeChat's metrics in the Prometheus text format, behind a bearer token.

Served: django-prometheus' request metrics (``django_http_*``), SafeChat's own counters
(``safechat.metrics``) and the series read when scraped (:class:`ScrapeCollector`: the
audit chain's lag behind its last checkpoint, that checkpoint's age, the wrapped keys a
master-key rotation has still to re-wrap, the Celery queue's depth). Never to the public:
with ``SAFECHAT_METRICS_TOKEN`` unset the path is a 404; without ``Authorization: Bearer
<token>`` (compared in constant time) a 401.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from audit.models import AuditCheckpoint, AuditEvent
from safechat.keyring.rotation import master_key_status

logger = logging.getLogger(__name__)

CELERY_QUEUES = ("celery",)


def celery_queue_depths() -> dict[str, int]:
    """Messages waiting in each Celery queue, as the broker counts them (kombu's passive
    queue declaration: Redis lists, the filesystem transport's folder). A queue that does
    not exist yet holds 0. Raises what the broker raises when it cannot be reached."""
    from safechat.celery import app

    depths: dict[str, int] = {}
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1)
        channel: Any = connection.default_channel  # kombu's stub omits queue_declare
        for queue in CELERY_QUEUES:
            try:
                _name, count, _consumers = channel.queue_declare(queue=queue, passive=True)
            except connection.channel_errors:
                count = 0
            depths[queue] = int(count)
    return depths


class ScrapeCollector(Collector):
    """Series read from the database and the broker when scraped (in the web process)."""

    def collect(self) -> Iterator[Metric]:
        head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        checkpoint = AuditCheckpoint.objects.order_by("-seq").values_list("seq", "created_at")
        last = checkpoint.first()
        lag = GaugeMetricFamily(
            "safechat_audit_chain_head_lag_events",
            "Audit events appended since the last signed checkpoint (head seq - checkpoint seq).",
        )
        lag.add_metric([], float(head - (last[0] if last else 0)))
        yield lag
        age = GaugeMetricFamily(
            "safechat_audit_checkpoint_age_seconds",
            "Seconds since the last signed checkpoint of the audit chain (absent before one).",
        )
        if last is not None:
            age.add_metric([], (timezone.now() - last[1]).total_seconds())
        yield age
        remaining = GaugeMetricFamily(
            "safechat_master_key_rewrap_remaining",
            "Wrapped keys (user, compliance, record-MAC) not yet under the current master-key "
            "version: 0 once a rotation is done (absent while the master key cannot be read).",
        )
        try:
            # Three counts grouped by the indexed kek_version column.
            remaining.add_metric([], float(master_key_status().remaining))
        except Exception:
            logger.warning("metrics: the master-key rotation status is unavailable", exc_info=True)
        yield remaining
        depth = GaugeMetricFamily(
            "safechat_celery_queue_depth",
            "Celery messages waiting in the broker, by queue (absent while it is unreachable).",
            labels=["queue"],
        )
        try:
            for queue, count in celery_queue_depths().items():
                depth.add_metric([queue], float(count))
        except Exception:
            logger.warning("metrics: the Celery broker did not answer", exc_info=True)
        yield depth


_scraped = CollectorRegistry(auto_describe=False)
_scraped.register(ScrapeCollector())


def counted_exposition() -> bytes:
    """The counted series (SafeChat's and django-prometheus'), in the Prometheus text
    format (version 0.0.4). In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) those
    of every process that wrote to that folder, added up; else this process's own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def exposition() -> bytes:
    """Every series: the counted ones, then those read now (:class:`ScrapeCollector`)."""
    return counted_exposition() + generate_latest(_scraped)


def bearer_token_matches(request: HttpRequest, expected: str) -> bool:
    """Whether ``request`` carries ``Authorization: Bearer <expected>`` (RFC 6750),
    compared in constant time."""
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(supplied.strip().encode(), expected.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The metrics for a Prometheus server holding ``SAFECHAT_METRICS_TOKEN``; 404 when
    no token is configured, 401 (``WWW-Authenticate: Bearer``) without the right one."""
    expected = settings.SAFECHAT_METRICS_TOKEN
    if not expected:
        raise Http404
    if not bearer_token_matches(request, expected):
        refused = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    # The text format every Prometheus server reads (names are all legacy-valid).
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
