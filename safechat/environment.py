"""Pure helpers that turn the process environment into settings.

Kept free of Django imports so that settings can use them before Django is
configured, and so tests can exercise each decision without reloading settings.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from safechat.crypto.providers import provider_kind

DEVELOPMENT = "development"
PRODUCTION = "production"
ENVIRONMENTS = frozenset({DEVELOPMENT, PRODUCTION})

# Django's own check (security.W009) calls a key weak below 50 characters or
# 5 distinct characters; we add the generated-insecure prefix.
MIN_SECRET_LENGTH = 50
MIN_SECRET_UNIQUE_CHARACTERS = 5


class InsecureConfigurationError(SystemExit):
    """Raised from settings: the process refuses to start, printing one line per reason."""

    def __init__(self, reason: str | list[str]) -> None:
        reasons = [reason] if isinstance(reason, str) else list(reason)
        super().__init__(
            "\n".join(f"SafeChat refuses to start in production: {r}" for r in reasons)
        )
        self.reason = reasons[0]
        self.reasons = reasons


def secret_is_weak(value: str) -> bool:
    return (
        len(value) < MIN_SECRET_LENGTH
        or len(set(value)) < MIN_SECRET_UNIQUE_CHARACTERS
        or value.startswith("django-insecure")
    )


def production_problems(
    *,
    secret_key: str | None,
    debug: bool,
    allowed_hosts: list[str],
    master_key_configured: bool,
    audit_signing_key_configured: bool,
) -> list[str]:
    """Every reason the given production configuration is unsafe, in a fixed order."""
    problems: list[str] = []
    if not secret_key:
        problems.append("SECRET_KEY is not set")
    elif secret_is_weak(secret_key):
        problems.append(
            f"SECRET_KEY is weak (needs at least {MIN_SECRET_LENGTH} random characters)"
        )
    if debug:
        problems.append("DEBUG is on")
    if not allowed_hosts:
        problems.append("ALLOWED_HOSTS is empty")
    elif any(host == "*" or host.startswith("*") for host in allowed_hosts):
        problems.append("ALLOWED_HOSTS contains a wildcard")
    if not master_key_configured:
        problems.append(
            "no master key is configured (set SAFECHAT_MASTER_KEYS, SAFECHAT_MASTER_KEY_FILE "
            "or the PKCS#11 provider)"
        )
    if not audit_signing_key_configured:
        problems.append(
            "no audit signing key is configured (set SAFECHAT_AUDIT_SIGNING_KEY or "
            "SAFECHAT_AUDIT_SIGNING_KEY_FILE)"
        )
    return problems


# E-mail backends that deliver nothing (or only to a console, a file or memory).
NON_DELIVERING_EMAIL_BACKENDS = frozenset(
    {
        "django.core.mail.backends.console.EmailBackend",
        "django.core.mail.backends.filebased.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
        "django.core.mail.backends.dummy.EmailBackend",
    }
)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def master_key_problems(env: Mapping[str, str]) -> list[str]:
    """Why the configured master key material cannot work (read, never used here)."""
    from safechat.crypto.errors import CryptoError
    from safechat.crypto.providers.local import parse_env_keys, read_key_file, read_private_file

    provider = provider_kind(env)
    try:
        if provider == "pkcs11":
            library = env.get("SAFECHAT_PKCS11_LIBRARY", "")
            if library and not os.path.isfile(library):
                return [f"SAFECHAT_PKCS11_LIBRARY {library} does not exist"]
            pin_file = env.get("SAFECHAT_PKCS11_PIN_FILE", "")
            if pin_file and not env.get("SAFECHAT_PKCS11_PIN"):
                read_private_file(pin_file, what="SAFECHAT_PKCS11_PIN_FILE")
        elif provider == "local":
            if env.get("SAFECHAT_MASTER_KEYS") and env.get("SAFECHAT_MASTER_KEY_FILE"):
                return ["set SAFECHAT_MASTER_KEYS or SAFECHAT_MASTER_KEY_FILE, not both"]
            if env.get("SAFECHAT_MASTER_KEYS"):
                parse_env_keys(env["SAFECHAT_MASTER_KEYS"])
            elif env.get("SAFECHAT_MASTER_KEY_FILE"):
                read_key_file(env["SAFECHAT_MASTER_KEY_FILE"])
        else:
            return [f"SAFECHAT_KEY_PROVIDER {provider!r} is unknown (local or pkcs11)"]
    except CryptoError as exc:
        return [f"master key: {_one_line(exc)}"]
    return []


def audit_signing_key_problems(env: Mapping[str, str]) -> list[str]:
    """Why the configured audit signing key cannot work."""
    import base64
    import binascii

    from safechat.crypto.errors import CryptoError
    from safechat.crypto.providers.local import read_private_file

    inline = env.get("SAFECHAT_AUDIT_SIGNING_KEY", "")
    path = env.get("SAFECHAT_AUDIT_SIGNING_KEY_FILE", "")
    source = "SAFECHAT_AUDIT_SIGNING_KEY"
    try:
        if inline:
            text = inline
        elif path:
            source = "SAFECHAT_AUDIT_SIGNING_KEY_FILE"
            text = read_private_file(path, what="the audit signing key file").decode(
                "ascii", errors="replace"
            )
        else:
            return []
        seed = base64.b64decode(text.strip(), validate=True)
    except CryptoError as exc:
        return [f"audit signing key: {_one_line(exc)}"]
    except (binascii.Error, ValueError):
        return [f"{source} is not base64 of a 32-byte Ed25519 seed"]
    if len(seed) != 32:
        return [f"{source} is not base64 of a 32-byte Ed25519 seed"]
    return []


def service_problems(
    env: Mapping[str, str], *, email_backend: str, ws_allowed_origins: list[str]
) -> list[str]:
    """Production needs PostgreSQL, Redis, real e-mail, explicit socket origins and, if
    metrics are served, a long enough token."""
    problems: list[str] = []
    database_url = env.get("DATABASE_URL", "")
    if not database_url:
        problems.append("DATABASE_URL is not set (production runs on PostgreSQL, not SQLite)")
    else:
        engine = database_engine(database_url)
        if engine not in POSTGRESQL_ENGINES:
            problems.append(
                f"DATABASE_URL names {engine or 'no known database'} "
                "(production runs on PostgreSQL)"
            )
    if not env.get("REDIS_URL"):
        problems.append(
            "REDIS_URL is not set (several processes need Redis for sockets and key changes)"
        )
    if email_backend in NON_DELIVERING_EMAIL_BACKENDS:
        problems.append(f"EMAIL_BACKEND {email_backend} delivers no mail")
    if any("*" in origin for origin in ws_allowed_origins):
        problems.append("SAFECHAT_WS_ALLOWED_ORIGINS contains a wildcard")
    problems += metrics_token_problems(env)
    return problems


METRICS_TOKEN_MIN_LENGTH = 32


def metrics_token_problems(env: Mapping[str, str]) -> list[str]:
    """``SAFECHAT_METRICS_TOKEN``, when set, must be at least 32 characters (unset: no
    ``/metrics`` at all). A bearer token is guessed online; 32 random URL-safe characters
    hold about 190 bits (docs/operations.md, "Metrics")."""
    token = env.get("SAFECHAT_METRICS_TOKEN", "")
    if token and len(token) < METRICS_TOKEN_MIN_LENGTH:
        return [
            f"SAFECHAT_METRICS_TOKEN is shorter than {METRICS_TOKEN_MIN_LENGTH} characters "
            "(make it with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        ]
    return []


POSTGRESQL_ENGINES = frozenset({"django.db.backends.postgresql"})


def database_engine(url: str) -> str:
    """The Django engine ``url`` resolves to, as settings will resolve it ("" if none):
    judged by what it is, not by how its scheme is spelled (``SQLITE:////x`` is SQLite)."""
    import warnings

    import environ

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # django-environ warns on an unknown scheme
            config = environ.Env.db_url_config(url)
    except Exception:  # any URL it cannot read names no database we run on
        return ""
    return str(config.get("ENGINE") or "")


def master_key_configured(env: Mapping[str, str]) -> bool:
    provider = provider_kind(env)
    if provider == "pkcs11":
        return bool(
            env.get("SAFECHAT_PKCS11_LIBRARY")
            and env.get("SAFECHAT_PKCS11_TOKEN_LABEL")
            and (env.get("SAFECHAT_PKCS11_PIN") or env.get("SAFECHAT_PKCS11_PIN_FILE"))
        )
    return bool(env.get("SAFECHAT_MASTER_KEYS") or env.get("SAFECHAT_MASTER_KEY_FILE"))


def audit_signing_key_configured(env: Mapping[str, str]) -> bool:
    return bool(env.get("SAFECHAT_AUDIT_SIGNING_KEY") or env.get("SAFECHAT_AUDIT_SIGNING_KEY_FILE"))


def write_private_file(path: Path, content: str) -> None:
    """Create ``path`` with mode 0600, complete or not at all.

    Raises FileExistsError rather than replace an existing file, so two processes
    starting together cannot end up with different secrets.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # atomic, and refuses to overwrite
    finally:
        tmp.unlink(missing_ok=True)


def development_secret(data_dir: Path, name: str, *, length: int = 64) -> str:
    """A secret generated on first use and kept in ``data_dir`` (0600), for development only."""
    path = data_dir / name
    if not path.exists():
        # Another process may win the race; then its secret is the one.
        with contextlib.suppress(FileExistsError):
            write_private_file(path, secrets.token_urlsafe(length))
    return path.read_text(encoding="utf-8").strip()


def epoch_max_messages(value: int | str) -> int:
    """``SAFECHAT_EPOCH_MAX_MESSAGES``: a whole number, refused above the crypto core's AEAD
    bound."""
    from safechat.crypto.aead import MAX_MESSAGES_PER_KEY

    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ImproperlyConfigured(
                f"SAFECHAT_EPOCH_MAX_MESSAGES must be a whole number, not {value!r}"
            ) from None
    if not 1 <= value <= MAX_MESSAGES_PER_KEY:
        raise ImproperlyConfigured(
            f"SAFECHAT_EPOCH_MAX_MESSAGES must be between 1 and {MAX_MESSAGES_PER_KEY} "
            f"(the AES-GCM random-nonce bound per key), not {value}"
        )
    return value


@dataclass(frozen=True)
class RetentionPacing:
    """How the retention job paces its purge (docs/compliance.md, "Pacing").

    ``batch``: the most messages (or files) one transaction purges; ``batch_seconds``:
    the duration each batch aims for (its size grows or shrinks between
    ``min(10, batch)`` and ``batch`` to stay near it); ``pause_ratio``: after each
    batch the job rests this many times the batch's duration (0: no rest).
    """

    batch: int
    batch_seconds: float
    pause_ratio: float


def _number(name: str, value: str, kind: type[int] | type[float]) -> float:
    try:
        number = kind(value.strip())
    except ValueError:
        whole = "a whole number" if kind is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {whole}, not {value!r}") from None
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name} must be a finite number, not {value!r}")
    return number


def retention_pacing(*, batch: str, batch_seconds: str, pause_ratio: str) -> RetentionPacing:
    """``SAFECHAT_RETENTION_BATCH`` (1 to 100000), ``SAFECHAT_RETENTION_BATCH_SECONDS``
    (0.001 to 60) and ``SAFECHAT_RETENTION_PAUSE_RATIO`` (0 to 100), as read from the
    environment; raises ``ImproperlyConfigured`` naming the first one out of range."""
    size = int(_number("SAFECHAT_RETENTION_BATCH", batch, int))
    if not 1 <= size <= 100_000:
        raise ImproperlyConfigured(
            f"SAFECHAT_RETENTION_BATCH must be between 1 and 100000, not {size}"
        )
    seconds = _number("SAFECHAT_RETENTION_BATCH_SECONDS", batch_seconds, float)
    if not 0.001 <= seconds <= 60:
        raise ImproperlyConfigured(
            f"SAFECHAT_RETENTION_BATCH_SECONDS must be between 0.001 and 60, not {seconds:g}"
        )
    ratio = _number("SAFECHAT_RETENTION_PAUSE_RATIO", pause_ratio, float)
    if not 0 <= ratio <= 100:
        raise ImproperlyConfigured(
            f"SAFECHAT_RETENTION_PAUSE_RATIO must be between 0 and 100, not {ratio:g}"
        )
    return RetentionPacing(batch=size, batch_seconds=seconds, pause_ratio=ratio)


def rate_limit(value: str) -> tuple[int, int]:
    """``"N/S"`` (at most N events per S seconds) as (N, S)."""
    count, _, seconds = value.partition("/")
    try:
        limit = (int(count), int(seconds))
    except ValueError:
        raise ImproperlyConfigured(f"a rate limit is N/S, e.g. 30/10, not {value!r}") from None
    if limit[0] < 1 or limit[1] < 1:
        raise ImproperlyConfigured(f"a rate limit needs N and S of at least 1, not {value!r}")
    return limit


def channel_layers_for(redis_url: str | None) -> dict[str, Any]:
    """channels-redis when Redis is configured, the in-process layer otherwise."""
    if redis_url:
        return {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    # A read timeout past channels-redis' 5 s blocking pop: redis-py 8
                    # defaults to 5 s, which broke every pop with nothing to receive and
                    # so closed every idle socket. A dead Redis still shows within 15 s.
                    "hosts": [{"address": redis_url, "socket_timeout": 15}],
                    "prefix": "safechat",
                    # Groups expire after a day by default; a removed member must
                    # be discarded explicitly, so a shorter expiry only limits the
                    # damage of a missed discard.
                    "group_expiry": 3600,
                    "capacity": 1000,
                },
            }
        }
    return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def celery_broker_for(redis_url: str | None, data_dir: Path) -> tuple[str, dict[str, Any]]:
    """Redis as Celery broker when configured, else kombu's filesystem transport.

    The filesystem transport needs no server, survives a restart (messages are
    files) and is shared by the worker and beat processes of one machine, which is
    what the embedded default promises. Task payloads carry ids only, never content.
    """
    if redis_url:
        return redis_url, {"visibility_timeout": 3600}
    queue_dir = data_dir / "broker"
    for sub in ("queue", "processed", "control"):
        (queue_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    return "filesystem://", {
        "data_folder_in": str(queue_dir / "queue"),
        "data_folder_out": str(queue_dir / "queue"),
        "processed_folder": str(queue_dir / "processed"),
        # The exchange table; kombu's default is ./control in the working directory.
        "control_folder": str(queue_dir / "control"),
        "store_processed": False,
    }
