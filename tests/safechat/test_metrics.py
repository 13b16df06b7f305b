"""/metrics: refused without its bearer token; after a posting run it serves the named
series, counted right, with no label naming a room, a person or content."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from pytest_django import Settings

from accounts.models import ApiToken
from accounts.services.tokens import api_token_create
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.fixtures import PROJECT_ROOT, project_env
from tests.support.sockets import open_verified_socket

TOKEN = "metrics-token-3b1f0c9a8d7e6f5a4b3c2d1e0f9a8b7c"

# Every series an operator is promised (docs/operations.md), as served (counters as _total).
NAMED_SERIES = {
    "safechat_open_sockets",
    "safechat_posts_total",
    "safechat_deliveries_total",
    "safechat_post_to_delivery_seconds_bucket",
    "safechat_post_to_delivery_seconds_count",
    "safechat_channel_layer_errors_total",
    "safechat_rate_limit_refusals_total",
    "safechat_audit_appends_total",
    "safechat_audit_chain_head_lag_events",
    "safechat_master_key_rewrap_remaining",
    "safechat_key_cache_requests_total",
    "safechat_retention_runs_total",
    "safechat_export_runs_total",
    "safechat_celery_queue_depth",
    "safechat_malware_scan_verdicts_total",
    "django_http_requests_total_by_view_transport_method_total",
}
LABEL_NAMES = {
    "operation", "limit", "action", "cache", "result", "outcome", "verdict", "queue", "le",
    "view", "method", "transport", "status", "type", "templatename", "charset",
    # prometheus_client's own: the Python runtime and its garbage collector
    "implementation", "major", "minor", "patchlevel", "version", "generation",
}  # fmt: skip

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Client, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-store" in response["Cache-Control"]
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_without_a_token_configured_there_is_no_metrics_path(settings: Settings) -> None:
    settings.SAFECHAT_METRICS_TOKEN = ""

    response = Client().get("/metrics", headers={"Authorization": "Bearer "})

    assert response.status_code == 404
    assert b"safechat_" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    ["", f"Basic {TOKEN}", "Bearer wrong-token", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"],
)
def test_without_the_right_bearer_token_metrics_are_refused(
    settings: Settings, authorization: str
) -> None:
    settings.SAFECHAT_METRICS_TOKEN = TOKEN
    headers = {"Authorization": authorization} if authorization else {}

    response = Client().get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"safechat_" not in response.content
    assert b"django_http" not in response.content


@pytest.mark.django_db(transaction=True)
def test_after_a_posting_run_the_named_series_are_served_and_counted(settings: Settings) -> None:
    # given a Prometheus server's token, a room with a member listening on a socket
    settings.SAFECHAT_METRICS_TOKEN = TOKEN
    settings.SAFECHAT_POST_RATE_LIMIT = (3, 60)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    owner = make_user(username="alice-owner")
    member = make_user(username="bob-member")
    room = make_room(owner=owner, members=(member,), name="Project Falcon desk")
    _row, secret = api_token_create(actor=owner, name="client", scope=ApiToken.Scope.WRITE)
    poster = Client(headers={"Authorization": f"Bearer {secret}"})
    before = scrape(Client(), **auth)

    async def run() -> tuple[list[int], Samples]:
        socket = await open_verified_socket(member)
        try:
            during = await database_sync_to_async(scrape)(Client(), **auth)
            statuses = []
            # when four messages are posted: three within the budget, one refused
            for n in range(4):
                answer = await database_sync_to_async(poster.post)(
                    f"/api/v1/rooms/{room.pk}/messages/",
                    json.dumps({"text": f"figures {n}"}),
                    content_type="application/json",
                )
                statuses.append(answer.status_code)
            delivered = 0
            while delivered < 3:
                frame: dict[str, Any] = await socket.receive_json_from(timeout=5)
                delivered += frame["type"] == "message.new"
            return statuses, during
        finally:
            await socket.disconnect()

    statuses, during = asyncio.run(run())
    after = scrape(Client(), **auth)

    # then the posts and refusal happened as counted
    assert statuses == [201, 201, 201, 429]
    assert value(during, "safechat_open_sockets") - value(before, "safechat_open_sockets") == 1
    assert value(after, "safechat_open_sockets") == value(before, "safechat_open_sockets")

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("safechat_posts_total") == 3
    assert grew("safechat_audit_appends_total", action="message.posted") == 3
    assert grew("safechat_deliveries_total") == 3
    assert grew("safechat_post_to_delivery_seconds_count") == 3
    assert grew("safechat_rate_limit_refusals_total", limit="message") == 1
    assert grew("safechat_key_cache_requests_total", cache="epoch_keys", result="hit") >= 1
    # and every named series is served
    served = {name for name, _labels in after}
    assert served >= NAMED_SERIES, NAMED_SERIES - served
    # and no label names a room, a person or what they wrote
    text = json.dumps([labels for _name, labels in after])
    for private in ("Project Falcon", "alice-owner", "bob-member", "figures"):
        assert private not in text
    assert {key for _name, labels in after for key, _v in labels} <= LABEL_NAMES
    ours = [labels for name, labels in after if name.startswith("safechat_")]
    assert not any(v == str(room.pk) for labels in ours for key, v in labels if key != "le")


def test_in_multiprocess_mode_the_web_process_serves_what_a_worker_counted(
    tmp_path: Path,
) -> None:
    # given the folder every process of the product shares (PROMETHEUS_MULTIPROC_DIR)
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = project_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(shared))
    setup = "import django; django.setup(); "

    # when a worker process records an infected file and exits
    subprocess.run(
        [sys.executable, "-c", setup + "from safechat import metrics; "
         "metrics.action_committed('file.scan.infected')"],
        cwd=PROJECT_ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "safechat.settings"},
        check=True, timeout=60,
    )  # fmt: skip
    # and another process (the web) exposes the counted series
    served = subprocess.run(
        [sys.executable, "-c", setup + "from safechat.monitoring import counted_exposition; "
         "print(counted_exposition().decode())"],
        cwd=PROJECT_ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "safechat.settings"},
        check=True, timeout=60, capture_output=True, text=True,
    ).stdout  # fmt: skip

    # then it serves the worker's count
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(served)
        for sample in family.samples
    }
    assert samples[("safechat_malware_scan_verdicts_total", (("verdict", "infected"),))] == 1
    assert samples[("safechat_audit_appends_total", (("action", "file.scan.infected"),))] == 1


@pytest.mark.django_db
def test_master_key_rotation_progress_is_served_and_falls_with_each_batch(
    settings: Settings, master_key_file: Path
) -> None:
    # given three users' keys and the record-MAC key under version 1, and a version 2 added
    from safechat.crypto.providers import key_file_add_version
    from safechat.keyring.provider import reset_provider
    from safechat.keyring.rotation import master_key_rotate, master_key_status
    from safechat.keyring.services import clear_key_caches

    settings.SAFECHAT_METRICS_TOKEN = TOKEN
    client = Client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    make_room(owner=make_user(), members=(make_user(), make_user()))
    before = value(scrape(client, **auth), "safechat_master_key_rewrap_remaining")
    key_file_add_version(master_key_file)
    reset_provider()
    clear_key_caches()
    waiting = master_key_status().remaining

    # when the gauge is scraped, then one rotation batch of 2 runs, then the rest
    started = scrape(client, **auth)
    master_key_rotate(batch_size=2, max_batches=1)
    one_batch = scrape(client, **auth)
    master_key_rotate(batch_size=2)
    done = scrape(client, **auth)

    # then it counts the keys still under version 1: all, then 2 fewer, then none
    assert before == 0
    assert waiting >= 4
    assert value(started, "safechat_master_key_rewrap_remaining") == waiting
    assert value(one_batch, "safechat_master_key_rewrap_remaining") == waiting - 2
    assert value(done, "safechat_master_key_rewrap_remaining") == 0
    # and it carries no label at all
    assert [
        labels for (name, labels) in done if name == "safechat_master_key_rewrap_remaining"
    ] == [()]
