"""SafeChat settings, read from the environment.

Development (the default) runs with nothing configured: SQLite in ``var/``, the
in-memory channel layer and a filesystem Celery broker, with secrets generated
once into ``var/`` (mode 0600). ``SAFECHAT_ENV=production`` refuses to start
unless every secret is given explicitly and every setting is safe.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from accounts import sso  # pure: the identity providers' configuration
from files import policy as file_policy  # pure: the type policy's defaults
from safechat import environment as envtools
from safechat import origins
from safechat.crypto.providers import provider_kind

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
SAFECHAT_ENV = env.str("SAFECHAT_ENV", default=envtools.DEVELOPMENT)
if SAFECHAT_ENV not in envtools.ENVIRONMENTS:
    raise SystemExit(
        f"SafeChat refuses to start: SAFECHAT_ENV must be one of "
        f"{', '.join(sorted(envtools.ENVIRONMENTS))}, not {SAFECHAT_ENV!r}"
    )
IS_PRODUCTION = SAFECHAT_ENV == envtools.PRODUCTION

DATA_DIR = Path(env.str("SAFECHAT_DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)

DEBUG = env.bool("DEBUG", default=False)

ALLOWED_HOSTS: list[str] = env.list(
    "ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["127.0.0.1", "localhost", "[::1]"]
)

if IS_PRODUCTION:
    _problems = envtools.production_problems(
        secret_key=os.environ.get("SECRET_KEY"),
        debug=DEBUG,
        allowed_hosts=ALLOWED_HOSTS,
        master_key_configured=envtools.master_key_configured(os.environ),
        audit_signing_key_configured=envtools.audit_signing_key_configured(os.environ),
    )
    # Key material is read (never used) at start: a key that cannot work refuses here,
    # not at the first message or checkpoint.
    _problems += envtools.master_key_problems(os.environ)
    _problems += envtools.audit_signing_key_problems(os.environ)
    _problems += envtools.service_problems(
        os.environ,
        email_backend=env.str(
            "EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend"
        ),
        ws_allowed_origins=env.list("SAFECHAT_WS_ALLOWED_ORIGINS", default=[]),
    )
    if _problems:
        raise envtools.InsecureConfigurationError(_problems)
    SECRET_KEY = env.str("SECRET_KEY")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="") or envtools.development_secret(
        DATA_DIR, "secret_key"
    )

# --- Keys that live outside the database -----------------------------------
# Normalised once (PKCS11 is pkcs11); every reader sees the same spelling.
SAFECHAT_KEY_PROVIDER = provider_kind(os.environ)
SAFECHAT_MASTER_KEYS = env.str("SAFECHAT_MASTER_KEYS", default="")
SAFECHAT_MASTER_KEY_FILE = env.str(
    "SAFECHAT_MASTER_KEY_FILE",
    default="" if IS_PRODUCTION else str(DATA_DIR / "master-keys.json"),
)
SAFECHAT_PKCS11_LIBRARY = env.str("SAFECHAT_PKCS11_LIBRARY", default="")
SAFECHAT_PKCS11_TOKEN_LABEL = env.str("SAFECHAT_PKCS11_TOKEN_LABEL", default="")
SAFECHAT_PKCS11_PIN = env.str("SAFECHAT_PKCS11_PIN", default="")
SAFECHAT_AUDIT_SIGNING_KEY = env.str("SAFECHAT_AUDIT_SIGNING_KEY", default="")
SAFECHAT_AUDIT_SIGNING_KEY_FILE = env.str(
    "SAFECHAT_AUDIT_SIGNING_KEY_FILE",
    default="" if IS_PRODUCTION else str(DATA_DIR / "audit-signing.key"),
)

# Key management (see docs/security.md).
SAFECHAT_KEY_CACHE_SECONDS = env.int("SAFECHAT_KEY_CACHE_SECONDS", default=60)
# The bearer token a Prometheus server sends to read /metrics; unset: /metrics is a 404.
SAFECHAT_METRICS_TOKEN = env.str("SAFECHAT_METRICS_TOKEN", default="")
SAFECHAT_EPOCH_MAX_AGE_DAYS = env.int("SAFECHAT_EPOCH_MAX_AGE_DAYS", default=30)
# Messages plus file keys per epoch key; capped at the crypto core's bound for random
# 96-bit GCM nonces (safechat.crypto.MAX_MESSAGES_PER_KEY, 2^24): a larger value is refused.
try:
    SAFECHAT_EPOCH_MAX_MESSAGES = envtools.epoch_max_messages(
        env.str("SAFECHAT_EPOCH_MAX_MESSAGES", default="1000000")
    )
except ImproperlyConfigured as _exc:
    raise SystemExit(f"SafeChat refuses to start: {_exc}") from None
SAFECHAT_MASTER_ROTATION_BATCH = env.int("SAFECHAT_MASTER_ROTATION_BATCH", default=500)
# Every process re-reads its master keys at least this often (and at once on an unknown
# version, or when a new version is published).
SAFECHAT_MASTER_KEY_REFRESH_SECONDS = env.int("SAFECHAT_MASTER_KEY_REFRESH_SECONDS", default=30)
SAFECHAT_PKCS11_PIN_FILE = env.str("SAFECHAT_PKCS11_PIN_FILE", default="")
SAFECHAT_PKCS11_KEY_LABEL_PREFIX = env.str("SAFECHAT_PKCS11_KEY_LABEL_PREFIX", default="")

# Rooms.
SAFECHAT_MEMBERS_CAN_CREATE_ROOMS = env.bool("SAFECHAT_MEMBERS_CAN_CREATE_ROOMS", default=False)
# At most N writes per user in any S seconds: "N/S" (rooms/ratelimit.py). Posts, edits
# and deletions share the first budget.
SAFECHAT_POST_RATE_LIMIT = envtools.rate_limit(env.str("SAFECHAT_POST_RATE_LIMIT", default="30/10"))
SAFECHAT_REACTION_RATE_LIMIT = envtools.rate_limit(
    env.str("SAFECHAT_REACTION_RATE_LIMIT", default="30/10")
)
SAFECHAT_READ_MARKER_RATE_LIMIT = envtools.rate_limit(
    env.str("SAFECHAT_READ_MARKER_RATE_LIMIT", default="60/10")
)
# Rooms and direct conversations created (each a key epoch sealed to everyone in it).
SAFECHAT_ROOM_CREATE_RATE_LIMIT = envtools.rate_limit(
    env.str("SAFECHAT_ROOM_CREATE_RATE_LIMIT", default="30/600")
)
# Members added, removed (a new epoch each), given a role or invited.
SAFECHAT_MEMBERSHIP_RATE_LIMIT = envtools.rate_limit(
    env.str("SAFECHAT_MEMBERSHIP_RATE_LIMIT", default="60/600")
)
# Room settings changed and rooms archived.
SAFECHAT_ROOM_SETTINGS_RATE_LIMIT = envtools.rate_limit(
    env.str("SAFECHAT_ROOM_SETTINGS_RATE_LIMIT", default="30/600")
)
# A repeated post with the same client key (socket ``client_id``, API ``Idempotency-Key``)
# returns the original message for at least this long.
SAFECHAT_IDEMPOTENCY_HOURS = env.int("SAFECHAT_IDEMPOTENCY_HOURS", default=24)

# --- Applications -----------------------------------------------------------
INSTALLED_APPS = [
    # First: a management command of an app listed earlier replaces one of the same name
    # listed later (django.core.management.get_commands), and accounts replaces the
    # commands of django.contrib.auth, django-otp and django-axes that would change
    # passwords, factors and lockouts outside its audited services.
    "accounts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files (/api/docs/)
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",
    "axes",
    "guardian",
    "csp",
    "safechat.apps.SafeChatConfig",
    "safechat.keyring",
    "audit",
    "rooms",
    "files",
    "compliance",
]

MIDDLEWARE = [
    # Request metrics (django-prometheus): first and last, so they time everything between.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "safechat.middleware.RequestIdMiddleware",
    # API responses: no-store, and the RateLimit headers of what the request counted.
    "safechat.middleware.ApiResponseMiddleware",
    # The frame and content-security headers before any middleware that may answer
    # itself (a refused session, a second factor missing, a content coding), so every
    # answer Django makes carries them (those made before Django: safechat.asgi).
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Django's, but an API path without its trailing slash is a 404, never a redirect.
    "safechat.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Idle/absolute expiry and ended sessions, then the second-factor allow-list:
    # every route not listed in accounts.middleware is closed to unverified sessions.
    "accounts.middleware.SessionPolicyMiddleware",
    "accounts.middleware.SecondFactorRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # An API body in a content coding (gzip, ...) is a 415 before anything parses it.
    "safechat.middleware.ContentCodingMiddleware",
    # An API query string that is not UTF-8 is a 400, never read with replacement marks.
    "safechat.middleware.QueryStringMiddleware",
    # Django's empty 405 (its method decorators) as the portal's page, or problem details.
    "safechat.middleware.MethodNotAllowedMiddleware",
    # Last but the metrics (whose counter only counts it), so it acts on a view's exception
    # first: stored key data that failed its check.
    "safechat.middleware.IntegrityFailureMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "safechat.urls"
ASGI_APPLICATION = "safechat.asgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

AUTHENTICATION_BACKENDS = [
    # Axes first: it refuses locked-out usernames/IPs before any password is hashed.
    "axes.backends.AxesStandaloneBackend",
    # Passwords as Django's ModelBackend; permissions from roles only (accounts.backends).
    "accounts.backends.RoleBackend",
    "guardian.backends.ObjectPermissionBackend",
]

# --- Database ---------------------------------------------------------------
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
        "DATABASE_POOL", default=False
    ):
        # Under ASGI every database_sync_to_async call ends by closing its connection;
        # psycopg's pool makes that a return to the pool instead of a new login (~5 ms).
        # Off by default: under the test runner's many short-lived event-loop threads the
        # pool ran dry; persistent connections (DATABASE_CONN_MAX_AGE) are the tested path.
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=10),
            "timeout": 10,
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "safechat.sqlite3",
            "OPTIONS": {
                # WAL lets readers run beside the single writer; IMMEDIATE takes the
                # write lock when a transaction starts, so the audit chain head is
                # serialised and writers queue instead of failing mid-transaction.
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            "TEST": {"NAME": DATA_DIR / "test-safechat.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Threads per server process that run posts from sockets, each with its own database
# connection; a room's posts always go to the same one (rooms/write_threads.py).
# SQLite has one writer at a time, so more threads would only queue on its lock.
SAFECHAT_SOCKET_WRITE_THREADS = env.int(
    "SAFECHAT_SOCKET_WRITE_THREADS",
    default=1 if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" else 4,
)

# --- Redis: channel layer, Celery broker, cache -----------------------------
REDIS_URL = env.str("REDIS_URL", default="") or None
CHANNEL_LAYERS = envtools.channel_layers_for(REDIS_URL)
CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = envtools.celery_broker_for(REDIS_URL, DATA_DIR)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
CELERY_BEAT_SCHEDULE["keyring-rotate-expired-epochs"] = {
    "task": "keyring.rotate_expired_epochs",
    "schedule": env.int("SAFECHAT_EPOCH_ROTATION_CHECK_SECONDS", default=3600),
}
CELERY_BEAT_SCHEDULE["files-scan-pending"] = {
    "task": "files.scan_pending",
    "schedule": env.int("SAFECHAT_FILE_SCAN_SWEEP_SECONDS", default=300),
}
CELERY_BEAT_SCHEDULE["files-expire-uploads"] = {
    "task": "files.expire_uploads",
    "schedule": env.int("SAFECHAT_UPLOAD_EXPIRY_CHECK_SECONDS", default=3600),
}
CELERY_BEAT_SCHEDULE["keyring-rotate-master-key"] = {
    "task": "keyring.rotate_master_key",
    "schedule": env.int("SAFECHAT_MASTER_ROTATION_CHECK_SECONDS", default=6 * 3600),
}
# --- Retention and legal holds (docs/compliance.md) --------------------------
# No policy may keep content for fewer days than this (six years: SEC 17a-4, FINRA 4511).
SAFECHAT_RETENTION_MINIMUM_DAYS = env.int("SAFECHAT_RETENTION_MINIMUM_DAYS", default=2190)
# Pacing of the purge (docs/compliance.md, "Pacing"): each transaction purges at most
# SAFECHAT_RETENTION_BATCH messages, its size adapted (from 10 up) so that it lasts about
# SAFECHAT_RETENTION_BATCH_SECONDS; after each, the job rests SAFECHAT_RETENTION_PAUSE_RATIO
# times as long, so the chat keeps its latency while a large purge goes on.
try:
    _pacing = envtools.retention_pacing(
        batch=env.str("SAFECHAT_RETENTION_BATCH", default="500"),
        batch_seconds=env.str("SAFECHAT_RETENTION_BATCH_SECONDS", default="0.05"),
        pause_ratio=env.str("SAFECHAT_RETENTION_PAUSE_RATIO", default="2.0"),
    )
except ImproperlyConfigured as _exc:
    raise SystemExit(f"SafeChat refuses to start: {_exc}") from None
SAFECHAT_RETENTION_BATCH = _pacing.batch
SAFECHAT_RETENTION_BATCH_SECONDS = _pacing.batch_seconds
SAFECHAT_RETENTION_PAUSE_RATIO = _pacing.pause_ratio
# A run renews its lease at every batch; past it, a later run takes it for dead (SQLite).
SAFECHAT_RETENTION_LEASE_SECONDS = env.int("SAFECHAT_RETENTION_LEASE_SECONDS", default=600)
# How long the operator keeps database and vault backups; the job warns when it exceeds
# the shortest policy (docs/deployment.md, "Backups and retention").
SAFECHAT_BACKUP_RETENTION_DAYS = env.int("SAFECHAT_BACKUP_RETENTION_DAYS", default=35)
# How many times an eDiscovery archive may be downloaded, unless its request says.
SAFECHAT_EXPORT_MAX_DOWNLOADS = env.int("SAFECHAT_EXPORT_MAX_DOWNLOADS", default=3)
# How long a finished eDiscovery archive may be downloaded.
SAFECHAT_EXPORT_EXPIRY_HOURS = env.int("SAFECHAT_EXPORT_EXPIRY_HOURS", default=72)
CELERY_BEAT_SCHEDULE["compliance-apply-retention"] = {
    "task": "compliance.apply_retention",
    "schedule": env.int("SAFECHAT_RETENTION_CHECK_SECONDS", default=24 * 3600),
}
CELERY_BEAT_SCHEDULE["compliance-expire-exports"] = {
    "task": "compliance.expire_exports",
    "schedule": 3600,
}
# Supervision review (docs/compliance.md, "Supervision review"): the most messages one
# matching batch reads (paced as retention's batches are), and how often beat runs it.
SAFECHAT_SUPERVISION_BATCH = env.int("SAFECHAT_SUPERVISION_BATCH", default=500)
if not 1 <= SAFECHAT_SUPERVISION_BATCH <= 100_000:
    raise SystemExit("SafeChat refuses to start: SAFECHAT_SUPERVISION_BATCH must be 1 to 100000")
CELERY_BEAT_SCHEDULE["compliance-supervision-run"] = {
    "task": "compliance.supervision_run",
    "schedule": env.int("SAFECHAT_SUPERVISION_CHECK_SECONDS", default=300),
}
# --- Audit log (docs/audit.md) ----------------------------------------------
# The signing key (SAFECHAT_AUDIT_SIGNING_KEY[_FILE]) is read above with the other keys.
SAFECHAT_AUDIT_CHECKPOINT_INTERVAL_SECONDS = env.int(
    "SAFECHAT_AUDIT_CHECKPOINT_INTERVAL_SECONDS", default=300
)
SAFECHAT_AUDIT_CHECKPOINT_EVERY = env.int("SAFECHAT_AUDIT_CHECKPOINT_EVERY", default=1000)
SAFECHAT_AUDIT_VERIFY_INTERVAL_SECONDS = env.int(
    "SAFECHAT_AUDIT_VERIFY_INTERVAL_SECONDS", default=24 * 3600
)
SAFECHAT_AUDIT_EXTRA_MAX_BYTES = env.int("SAFECHAT_AUDIT_EXTRA_MAX_BYTES", default=4096)
SAFECHAT_AUDIT_ANCHOR_FILE = env.str(
    "SAFECHAT_AUDIT_ANCHOR_FILE", default=str(DATA_DIR / "audit-anchors.jsonl")
)
SAFECHAT_AUDIT_SYSLOG_ADDRESS = env.str("SAFECHAT_AUDIT_SYSLOG_ADDRESS", default="")
# Public keys (base64) of retired signing keys, so their checkpoints still verify.
SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS: list[str] = env.list(
    "SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS", default=[]
)
CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {
    "task": "audit.tasks.audit_checkpoint_write_task",
    "schedule": SAFECHAT_AUDIT_CHECKPOINT_INTERVAL_SECONDS,
}
CELERY_BEAT_SCHEDULE["audit-verify"] = {
    "task": "audit.tasks.audit_chain_verify_task",
    "schedule": SAFECHAT_AUDIT_VERIFY_INTERVAL_SECONDS,
}

# The filesystem transport has no fanout exchange for remote control.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = REDIS_URL is not None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis: its public get_redis_connection serves safechat.shared_cache.
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "safechat",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Authentication and sessions --------------------------------------------
PASSWORD_HASHERS = [
    # Argon2id with parameters measured by benchmarks/auth_bench.py (docs/accounts.md).
    "accounts.hashers.SafeChatArgon2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = env.int("SAFECHAT_SESSION_ABSOLUTE_SECONDS", default=12 * 3600)
SAFECHAT_SESSION_IDLE_SECONDS = env.int("SAFECHAT_SESSION_IDLE_SECONDS", default=15 * 60)
# Open pages are warned this many seconds before an idle or absolute sign-out.
SAFECHAT_SESSION_WARNING_SECONDS = env.int("SAFECHAT_SESSION_WARNING_SECONDS", default=60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
# A refused CSRF token: the portal's own 403 page (problem details under /api/).
CSRF_FAILURE_VIEW = "safechat.error_pages.csrf_failure"
LOGIN_URL = "/accounts/sign-in/"
LOGIN_REDIRECT_URL = "/accounts/"

# --- Accounts: second factor, lockout, tokens, invitations (docs/accounts.md) ---
# A factor change needs a second-factor check no older than this.
SAFECHAT_REVERIFY_SECONDS = env.int("SAFECHAT_REVERIFY_SECONDS", default=300)
SAFECHAT_API_TOKEN_DAYS = env.int("SAFECHAT_API_TOKEN_DAYS", default=90)
# No token lives longer, whoever creates it and from wherever (portal, API, admin).
SAFECHAT_TOKEN_MAX_DAYS = env.int("SAFECHAT_TOKEN_MAX_DAYS", default=366)
# At most N refused API tokens per client IP per window of S seconds ("N/S"); past it
# the API answers 429 without looking tokens up, and audits that once per window.
# access.refused events recorded per signed-in person in any window; past it one
# "throttled" event says so and the rest of the window's 403s are not recorded.
SAFECHAT_ACCESS_REFUSAL_AUDIT_LIMIT = envtools.rate_limit(
    env.str("SAFECHAT_ACCESS_REFUSAL_AUDIT_LIMIT", default="30/60")
)
# Requests to the API per signed-in user (session or token alike) in any S seconds: "N/S"
# (safechat.api.ApiRequestThrottle). Every answer reports it in the RateLimit headers.
SAFECHAT_API_RATE_LIMIT = envtools.rate_limit(env.str("SAFECHAT_API_RATE_LIMIT", default="1200/60"))
SAFECHAT_TOKEN_FAILURE_LIMIT = envtools.rate_limit(
    env.str("SAFECHAT_TOKEN_FAILURE_LIMIT", default="20/60")
)
SAFECHAT_INVITATION_HOURS = env.int("SAFECHAT_INVITATION_HOURS", default=72)
SAFECHAT_BOOTSTRAP_MINUTES = 60
SAFECHAT_BACKUP_CODE_COUNT = 10
OTP_TOTP_ISSUER = "SafeChat"
OTP_WEBAUTHN_RP_NAME = "SafeChat"
OTP_WEBAUTHN_RP_ID = env.str("SAFECHAT_WEBAUTHN_RP_ID", default="localhost")
OTP_WEBAUTHN_ALLOWED_ORIGINS: list[str] = env.list(
    "SAFECHAT_WEBAUTHN_ORIGINS", default=[f"http://localhost:{os.environ.get('PORT', '8000')}"]
)
# Passkeys are a second factor here, never a replacement for the password.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
# Password and code failures count per username and per IP; a security admin lifts.
AXES_FAILURE_LIMIT = env.int("SAFECHAT_LOCKOUT_FAILURES", default=10)
AXES_COOLOFF_TIME = env.int("SAFECHAT_LOCKOUT_MINUTES", default=30) / 60 or None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = False  # reset only after the second factor (accounts.services)
AXES_DISABLE_ACCESS_LOG = True  # the audit log records sign-ins
AXES_ENABLE_ADMIN = False  # lockouts are lifted through an audited service
# Its log lines name the path, which for a one-time link is its secret: redacted.
AXES_CLIENT_STR_CALLABLE = "safechat.logredact.axes_client_str"
AXES_SENSITIVE_PARAMETERS = ["password", "code", "token", "new_password1", "new_password2"]
# The sign-in view answers lockouts itself; no third-party login view exists.
SILENCED_SYSTEM_CHECKS = ["axes.W002"]
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default=(
        "django.core.mail.backends.smtp.EmailBackend"
        if IS_PRODUCTION
        else "django.core.mail.backends.console.EmailBackend"
    ),
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=IS_PRODUCTION)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="SafeChat <no-reply@localhost>")

# --- Federated sign-in: OpenID Connect (docs/sso.md) --------------------------
# A JSON list of providers; unset: none, and sign-in is SafeChat's own alone.
try:
    SAFECHAT_OIDC_PROVIDERS = sso.oidc_providers_parse(
        env.str("SAFECHAT_OIDC_PROVIDERS", default=""),
        environ=os.environ,
        production=IS_PRODUCTION,
    )
except sso.SsoConfigurationError as _exc:
    raise SystemExit(f"SafeChat refuses to start: {_exc}") from None
# Every call to a provider (discovery, keys, the token endpoint) gives up after this long.
SAFECHAT_OIDC_HTTP_TIMEOUT_SECONDS = env.float("SAFECHAT_OIDC_HTTP_TIMEOUT_SECONDS", default=10.0)
# A provider's discovery document and signing keys are re-read at least this often (and
# the keys at once when a token names an unknown one).
SAFECHAT_OIDC_METADATA_SECONDS = env.int("SAFECHAT_OIDC_METADATA_SECONDS", default=3600)
# A sign-in must come back from the provider within this long of leaving for it.
SAFECHAT_OIDC_FLOW_SECONDS = env.int("SAFECHAT_OIDC_FLOW_SECONDS", default=600)

# --- Federated sign-in: SAML 2.0 (docs/sso.md) ---------------------------------
# A JSON list of identity providers; unset: none. SafeChat's own side (its base URL,
# entity ID, key and certificate) is needed only where one is configured.
try:
    SAFECHAT_SAML_IDPS = sso.saml_identity_providers_parse(
        env.str("SAFECHAT_SAML_IDPS", default=""), production=IS_PRODUCTION
    )
    sso.providers_distinct(SAFECHAT_OIDC_PROVIDERS, SAFECHAT_SAML_IDPS)
    # SCIM groups (docs/sso.md "SCIM Groups") are mapped to roles and barrier groups by
    # this provider's role_map and barrier_group_map; unset: they are kept, map nothing.
    SAFECHAT_SCIM_GROUPS_PROVIDER = sso.scim_groups_provider_parse(
        env.str("SAFECHAT_SCIM_GROUPS_PROVIDER", default=""),
        SAFECHAT_OIDC_PROVIDERS,
        SAFECHAT_SAML_IDPS,
    )
    SAFECHAT_SAML_SP: sso.SamlServiceProvider | None = (
        sso.saml_service_provider_parse(
            environ=os.environ,
            production=IS_PRODUCTION,
            default_base_url=""
            if IS_PRODUCTION
            else f"http://localhost:{os.environ.get('PORT', '8000')}",
        )
        if SAFECHAT_SAML_IDPS
        else None
    )
    if SAFECHAT_SAML_IDPS and shutil.which("xmlsec1") is None:
        raise sso.SsoConfigurationError(
            "SAML needs the xmlsec1 program (Debian package xmlsec1) to check signatures"
        )
except sso.SsoConfigurationError as _exc:
    raise SystemExit(f"SafeChat refuses to start: {_exc}") from None
# A SAML sign-in must come back from the IdP within this long of leaving for it.
SAFECHAT_SAML_FLOW_SECONDS = env.int("SAFECHAT_SAML_FLOW_SECONDS", default=600)
# Answers from identity providers (OIDC callbacks, SAML responses) accepted per client
# address, counted before any signature is checked: N per S seconds.
# Local passwords (docs/accounts.md "Local passwords and the break-glass account"): off,
# people sign in through the identity provider only, and a password signs in only the
# break-glass accounts named here (with their second factor; audited and alerted).
SAFECHAT_LOCAL_PASSWORDS = env.bool("SAFECHAT_LOCAL_PASSWORDS", default=True)
try:
    SAFECHAT_BREAK_GLASS_USERNAMES = sso.local_password_policy_check(
        local_passwords=SAFECHAT_LOCAL_PASSWORDS,
        break_glass=env.list("SAFECHAT_BREAK_GLASS_USERNAMES", default=[]),
        providers_configured=bool(SAFECHAT_OIDC_PROVIDERS or SAFECHAT_SAML_IDPS),
    )
except sso.LocalPasswordPolicyError as _exc:
    raise SystemExit(f"SafeChat refuses to start: {_exc}") from None
SAFECHAT_SSO_RATE_LIMIT = envtools.rate_limit(env.str("SAFECHAT_SSO_RATE_LIMIT", default="20/60"))

# --- HTTP security ----------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Load balancers probe health over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
if env.bool("SAFECHAT_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Keep the X-Request-ID a request arrives with only when the proxy in front sets it on
# every request (deploy/nginx overwrites the client's); otherwise each request gets a new
# id, so a client cannot choose the id its actions are audited under.
SAFECHAT_TRUST_REQUEST_ID_HEADER = env.bool("SAFECHAT_TRUST_REQUEST_ID_HEADER", default=False)

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- WebSockets -------------------------------------------------------------
# Origins allowed to open /ws/; never a wildcard (a missing Origin is refused).
# Matched exactly on scheme, host and port (safechat/origins.py).
SAFECHAT_WS_ALLOWED_ORIGINS: list[str] = env.list(
    "SAFECHAT_WS_ALLOWED_ORIGINS",
    default=origins.default_origins(
        hosts=ALLOWED_HOSTS, production=IS_PRODUCTION, port=os.environ.get("PORT", "8000")
    ),
)
try:
    SAFECHAT_WS_ORIGINS = origins.allowed_origins_parse(SAFECHAT_WS_ALLOWED_ORIGINS)
except origins.OriginError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# A socket re-derives its right to live from the database on every frame (at most
# this often per socket, seconds) and on a timer at least this often (seconds).
SAFECHAT_SOCKET_VERDICT_SECONDS = env.float("SAFECHAT_SOCKET_VERDICT_SECONDS", default=1.5)
SAFECHAT_SOCKET_RECHECK_SECONDS = env.float("SAFECHAT_SOCKET_RECHECK_SECONDS", default=10.0)
# Sockets re-join their channel-layer groups this often, well inside the layer's
# group expiry, so a socket open for days keeps receiving (docs/realtime.md).
SAFECHAT_SOCKET_GROUP_REFRESH_SECONDS = env.float(
    "SAFECHAT_SOCKET_GROUP_REFRESH_SECONDS",
    default=CHANNEL_LAYERS["default"].get("CONFIG", {}).get("group_expiry", 86400) / 4,
)

# --- API --------------------------------------------------------------------
# --- Request bodies (docs/api.md, "Limits") -------------------------------------
# No request body past this is read (safechat.body_limit, before Django): 413 at once by
# Content-Length, or as soon as a body sent without one passes it. Django's own limit on
# what it parses in memory is the same number, so the two never disagree.
SAFECHAT_MAX_BODY_BYTES = env.int("SAFECHAT_MAX_BODY_BYTES", default=2_621_440)
DATA_UPLOAD_MAX_MEMORY_SIZE = SAFECHAT_MAX_BODY_BYTES

REST_FRAMEWORK = {
    # The token scheme first: DRF takes its challenge from the first class, so a request
    # without valid credentials gets 401 with `WWW-Authenticate: Bearer`, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        # A session must be second-factor verified; a token must hold the method's scope.
        "accounts.api.permissions.IsVerifiedOrToken",
        "accounts.api.permissions.TokenHasScope",
        # An Idempotency-Key on a write that does not honour one is refused, not ignored.
        "safechat.api.IdempotencyKeyHonoured",
    ],
    # Every request of a signed-in user counts against SAFECHAT_API_RATE_LIMIT (429 past
    # it), reported with the write budgets in the RateLimit headers.
    "DEFAULT_THROTTLE_CLASSES": ["safechat.api.ApiRequestThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Accept read as RFC 9110 says (q=0 refuses), problem+json answered as JSON.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "safechat.api.ApiContentNegotiation",
    # JSON only, read within DATA_UPLOAD_MAX_MEMORY_SIZE: no form or multipart parsing (a
    # multipart body would be spooled to disk), a 415 problem for any other type.
    "DEFAULT_PARSER_CLASSES": ["safechat.api.JSONParser"],
    # OPTIONS names what a route parses and renders, never its docstring.
    "DEFAULT_METADATA_CLASS": "safechat.api.ApiMetadata",
    # ``?format=`` is an ordinary query parameter, not DRF's renderer override (which
    # answers an unknown format 404).
    "URL_FORMAT_OVERRIDE": None,
    "EXCEPTION_HANDLER": "safechat.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SafeChat API",
    "DESCRIPTION": "Encrypted, audited chat rooms for regulated institutions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # HEAD where a view defines it (tus's offset query) is documented as an operation.
    "DEFAULT_GENERATOR_CLASS": "safechat.api_schema.ApiSchemaGenerator",
    # A PATCH body is documented as the view reads it: a field it requires (a member's
    # `role`, a message's `text`) is required in the schema too, not made optional.
    "COMPONENT_SPLIT_PATCH": False,
    # The documentation UIs from our own static files: the CSP admits no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation documents the problem details it can answer (400, 401, 403, ...).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "safechat.api.problem_responses_hook",
    ],
}

# --- Static files, i18n -----------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("SAFECHAT_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
if not IS_PRODUCTION:
    # Development serves from the finders; the folder only has to exist.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "safechat.staticstorage.ModuleAwareStaticFilesStorage"
            if IS_PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# The file vault's blobs (ciphertext only): a private folder never served by the web server,
# or any Storage backend (django-storages' S3 or Azure, ...) named here with its options
# as JSON (docs/files.md).
STORAGES["vault"] = {
    "BACKEND": env.str(
        "SAFECHAT_VAULT_STORAGE_BACKEND",
        default="django.core.files.storage.FileSystemStorage",
    ),
    "OPTIONS": env.json(
        "SAFECHAT_VAULT_STORAGE_OPTIONS",
        default={"location": str(DATA_DIR / "vault"), "base_url": None},
    ),
}
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
MEDIA_ROOT = DATA_DIR / "media"

# --- File vault (docs/files.md) -----------------------------------------------
SAFECHAT_FILE_MAX_BYTES = env.int("SAFECHAT_FILE_MAX_BYTES", default=100 * 1024 * 1024)
# Type policy (files/policy.py): blocked by name, by declared type, by sniffed content.
SAFECHAT_FILE_BLOCKED_EXTENSIONS = env.list(
    "SAFECHAT_FILE_BLOCKED_EXTENSIONS", default=list(file_policy.DEFAULT_BLOCKED_EXTENSIONS)
)
# Empty: any extension not blocked; else only these (without the dot).
SAFECHAT_FILE_ALLOWED_EXTENSIONS = env.list("SAFECHAT_FILE_ALLOWED_EXTENSIONS", default=[])
SAFECHAT_FILE_BLOCKED_TYPES = env.list(
    "SAFECHAT_FILE_BLOCKED_TYPES", default=list(file_policy.DEFAULT_BLOCKED_TYPES)
)
SAFECHAT_FILE_BLOCKED_KINDS = env.list(
    "SAFECHAT_FILE_BLOCKED_KINDS", default=list(file_policy.DEFAULT_BLOCKED_KINDS)
)
# The bytes a room's files may hold (uploading, pending scan and available ones).
SAFECHAT_ROOM_FILE_QUOTA_BYTES = env.int(
    "SAFECHAT_ROOM_FILE_QUOTA_BYTES", default=10 * 1024 * 1024 * 1024
)
# The portal's tus client sends a file in PATCHes of this many bytes (docs/portal.md).
# The server streams a PATCH of any size in constant memory and keeps what arrived of one
# cut short, so this bounds only how much one request carries (and how long it lasts):
# each PATCH costs a request's fixed work, so fewer are faster. Lower it behind a proxy
# whose body limit is smaller. At least 64 KiB (one chunk of the encrypted stream).
SAFECHAT_UPLOAD_CHUNK_BYTES = env.int("SAFECHAT_UPLOAD_CHUNK_BYTES", default=32 * 1024 * 1024)
if SAFECHAT_UPLOAD_CHUNK_BYTES < 64 * 1024:
    raise SystemExit("SafeChat refuses to start: SAFECHAT_UPLOAD_CHUNK_BYTES is under 65536")
# An upload not completed within this many hours is abandoned: its blob and tail are removed.
SAFECHAT_UPLOAD_EXPIRY_HOURS = env.int("SAFECHAT_UPLOAD_EXPIRY_HOURS", default=24)
# clamd: a unix socket path, or a host and port. With neither, files stay "pending scan".
SAFECHAT_CLAMD_SOCKET = env.str("SAFECHAT_CLAMD_SOCKET", default="")
SAFECHAT_CLAMD_HOST = env.str("SAFECHAT_CLAMD_HOST", default="")
SAFECHAT_CLAMD_PORT = env.int("SAFECHAT_CLAMD_PORT", default=3310)
SAFECHAT_CLAMD_TIMEOUT_SECONDS = env.float("SAFECHAT_CLAMD_TIMEOUT_SECONDS", default=30.0)
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging: JSON lines to stderr, never message or file content (safechat/logjson.py)
# The server's own loggers (uvicorn's) write through the same handler, so web, worker
# and beat lines share one format; Celery leaves logging to these settings
# (safechat.celery).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "safechat.middleware.RequestIdLogFilter"},
        "task_fields": {"()": "safechat.logjson.TaskFieldsFilter"},
        "one_time_secrets": {"()": "safechat.logredact.OneTimeSecretFilter"},
        "client_refusal": {"()": "safechat.logjson.ClientRefusalFilter"},
    },
    "formatters": {"json": {"()": "safechat.logjson.JsonLineFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "task_fields", "one_time_secrets"],
        }
    },
    "root": {"handlers": ["stderr"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # A bad Host header is the client's doing: a WARNING, no traceback, once a minute
        # per message, never an ERROR per request (log flooding).
        "django.security.DisallowedHost": {"filters": ["client_refusal"]},
        **{
            name: {"handlers": ["stderr"], "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    },
}
