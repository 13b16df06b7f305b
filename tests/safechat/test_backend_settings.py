"""Settings pick Redis for the channel layer and broker when REDIS_URL is set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from safechat.environment import rate_limit
from tests.support.fixtures import PROJECT_ROOT, project_env

PRINT_BACKENDS = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
    " 'hosts': s.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('hosts'),"
    " 'broker': s.CELERY_BROKER_URL, 'cache': s.CACHES['default']['BACKEND'],"
    " 'broker_options': s.CELERY_BROKER_TRANSPORT_OPTIONS,"
    " 'db': s.DATABASES['default']['ENGINE'],"
    " 'journal': s.DATABASES['default'].get('OPTIONS', {}).get('init_command', '')}))"
)


def backends(env: dict[str, str]) -> dict[str, object]:
    env["DJANGO_SETTINGS_MODULE"] = "safechat.settings"
    result = subprocess.run(
        [sys.executable, "-c", PRINT_BACKENDS],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_redis_url_selects_the_redis_channel_layer_broker_and_cache(tmp_path: Path) -> None:
    config = backends(project_env(tmp_path, REDIS_URL="redis://127.0.0.1:6379/7"))

    assert config["layer"] == "channels_redis.core.RedisChannelLayer"
    assert config["hosts"] == [{"address": "redis://127.0.0.1:6379/7", "socket_timeout": 15}]
    assert config["broker"] == "redis://127.0.0.1:6379/7"
    assert config["cache"] == "django_redis.cache.RedisCache"


def test_without_redis_url_everything_is_embedded(tmp_path: Path) -> None:
    config = backends(project_env(tmp_path))

    assert config["layer"] == "channels.layers.InMemoryChannelLayer"
    assert config["broker"] == "filesystem://"
    # Every folder of the filesystem broker is in the data directory, none in the checkout.
    options = config["broker_options"]
    assert isinstance(options, dict)
    folders = [v for k, v in options.items() if k.endswith(("_in", "_out", "_folder"))]
    assert len(folders) == 4
    assert all(Path(f).is_relative_to(tmp_path / "data") for f in folders)
    assert config["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert config["db"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in str(config["journal"])


def test_database_url_selects_postgresql(tmp_path: Path) -> None:
    env = project_env(tmp_path, DATABASE_URL="postgres://safechat@127.0.0.1:5432/safechat")
    config = backends(env)

    assert config["db"] == "django.db.backends.postgresql"


def test_rate_limits_are_read_as_count_per_seconds() -> None:
    assert rate_limit("30/10") == (30, 10)
    for bad in ("30", "thirty/10", "0/10", "30/0"):
        with pytest.raises(ImproperlyConfigured):
            rate_limit(bad)
