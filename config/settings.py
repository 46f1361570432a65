"""Stock Mind settings: one module, configured by environment variables.

Every variable is listed in README.md. Values missing from the environment are
taken from the embedded services' env file (`.data/services.env`, written by
`make services`) when it exists; the environment always wins.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.queues import (
    PRUNE_SEARCH_LOG_TASK,
    QUEUE_MAINTENANCE,
    QUEUE_WEBHOOKS,
    ROLL_UP_SEARCH_DAYS_TASK,
    SEND_DUE_WEBHOOKS_TASK,
    SWEEP_MEDIA_TASK,
    SYNC_TENANT_INDEXES_TASK,
)

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
SERVICES_ENV_FILE = Path(env.str("STOCKMIND_SERVICES_ENV", default=str(BASE_DIR / ".data" / "services.env")))
if SERVICES_ENV_FILE.exists():
    # read_env only sets variables that are not already in the environment.
    environ.Env.read_env(SERVICES_ENV_FILE, overwrite=False)


def _positive_int(name: str, default: int) -> int:
    value = env.int(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive integer, got {value}")
    return value


# --- core ---------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off "
            "(run `make services` for a local one, or set DJANGO_DEBUG=1)."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DJANGO_DEBUG"  # noqa: S105

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "ops_console.sites.OpsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "catalog",
    "media_pipeline",
    "search",
    "ops_console",
]

MIDDLEWARE = [
    "ops_console.metrics.RequestMetricsMiddleware",
    "catalog.api.limits.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Each process keeps a pool of connections (Django's psycopg pool): a request
# or task borrows one and gives it back, so that a burst waits for a free
# connection (up to DATABASE_POOL_TIMEOUT seconds, then a 503) instead of
# opening more than PostgreSQL allows. A process holds at most
# DATABASE_POOL_MAX_SIZE connections per database (docs/SCALING.md sizes it).
DATABASE_POOL = env.bool("DATABASE_POOL", default=True)
DATABASE_POOL_MIN_SIZE = env.int("DATABASE_POOL_MIN_SIZE", default=1)
DATABASE_POOL_MAX_SIZE = _positive_int("DATABASE_POOL_MAX_SIZE", 8)
DATABASE_POOL_TIMEOUT = env.float("DATABASE_POOL_TIMEOUT", default=10.0)
if not 0 <= DATABASE_POOL_MIN_SIZE <= DATABASE_POOL_MAX_SIZE:
    raise ImproperlyConfigured("DATABASE_POOL_MIN_SIZE must be 0..DATABASE_POOL_MAX_SIZE")
if DATABASE_POOL_TIMEOUT <= 0:
    raise ImproperlyConfigured("DATABASE_POOL_TIMEOUT must be a positive number of seconds")
# Read replicas (search reads only, config/replicas.py): a connection attempt
# gives up after this long, and a replica that failed is left alone this long.
DATABASE_REPLICA_CONNECT_TIMEOUT = _positive_int("DATABASE_REPLICA_CONNECT_TIMEOUT", 2)
DATABASE_REPLICA_RETRY_SECONDS = _positive_int("DATABASE_REPLICA_RETRY_SECONDS", 30)


def _database(url: str, *, replica: bool = False) -> dict:
    database = env.db_url_config(url)
    if database["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL with pgvector (postgres://...)")
    # A connection is checked before it is used (by the pool when pooled):
    # after PostgreSQL restarts, the next request reconnects instead of failing
    # on a dead socket.
    database["CONN_HEALTH_CHECKS"] = True
    options = database.setdefault("OPTIONS", {})
    if replica:
        options.setdefault("connect_timeout", DATABASE_REPLICA_CONNECT_TIMEOUT)
        # A test run makes no test database on a replica (the suite itself
        # runs without replicas: tests/services_env.py).
        database["TEST"] = {"MIRROR": "default"}
    if DATABASE_POOL:
        wait = min(DATABASE_POOL_TIMEOUT, DATABASE_REPLICA_CONNECT_TIMEOUT) if replica else DATABASE_POOL_TIMEOUT
        options["pool"] = {"min_size": DATABASE_POOL_MIN_SIZE, "max_size": DATABASE_POOL_MAX_SIZE, "timeout": wait}
        database["CONN_MAX_AGE"] = 0  # the pool keeps the connections
    else:  # e.g. behind PgBouncer: a connection per thread, kept this many seconds
        database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    return database


DATABASES = {"default": _database(env.str("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/stockmind"))}
# Read replicas, comma-separated: searches read from one that answers
# (config/replicas.py), everything else from the primary.
for _n, _url in enumerate(env.list("DATABASE_REPLICA_URLS", default=[]), start=1):
    DATABASES[f"replica_{_n}"] = _database(_url, replica=True)
DATABASE_ROUTERS = ["config.replicas.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / ".data" / "media")))
# Serve MEDIA_ROOT from Django (development, or a single-box install without a
# CDN). Object keys contain a random UUID; production with S3 uses signed URLs.
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=DEBUG)

# --- storage: filesystem by default, S3 when a bucket is named ----------------

S3_BUCKET_NAME = env.str("S3_BUCKET_NAME", default="")
AWS_REGION = env.str("AWS_REGION", default="us-east-1")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None

if S3_BUCKET_NAME:
    default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET_NAME,
            "region_name": AWS_REGION,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": env.int("S3_URL_EXPIRES_SECONDS", default=3600),
        },
    }
else:
    default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": MEDIA_URL},
    }

# Presigned POST uploads straight to S3 (POST /api/v1/media/uploads/).
S3_PRESIGN_EXPIRES_SECONDS = _positive_int("S3_PRESIGN_EXPIRES_SECONDS", 900)

# The S3 -> SQS -> Celery bridge (`manage.py sqs_bridge`).
SQS_QUEUE_URL = env.str("SQS_QUEUE_URL", default="")
AWS_SQS_ENDPOINT_URL = env.str("AWS_SQS_ENDPOINT_URL", default="") or None
SQS_WAIT_SECONDS = env.int("SQS_WAIT_SECONDS", default=20)
if not 0 <= SQS_WAIT_SECONDS <= 20:
    raise ImproperlyConfigured("SQS_WAIT_SECONDS must be 0..20 (SQS long polling)")
SQS_BATCH_SIZE = env.int("SQS_BATCH_SIZE", default=10)
if not 1 <= SQS_BATCH_SIZE <= 10:
    raise ImproperlyConfigured("SQS_BATCH_SIZE must be 1..10 (SQS's maximum per receive)")

STORAGES = {
    "default": default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- uploads and limits (DESIGN.md "Limits and bad input") ----------------------

MB = 1024 * 1024
MAX_UPLOAD_BYTES = _positive_int("MAX_UPLOAD_BYTES", 50 * MB)
MAX_IMAGE_BYTES = _positive_int("MAX_IMAGE_BYTES", 20 * MB)
MAX_SEARCH_IMAGE_BYTES = _positive_int("MAX_SEARCH_IMAGE_BYTES", 10 * MB)
MAX_IMAGE_SIDE = _positive_int("MAX_IMAGE_SIDE", 12_000)
MAX_IMAGE_PIXELS = _positive_int("MAX_IMAGE_PIXELS", 50_000_000)
MAX_VIDEO_SECONDS = _positive_int("MAX_VIDEO_SECONDS", 600)
# Uploads larger than this are spooled to a temporary file, not held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * MB
# Non-file request bodies (JSON, form fields) stay small.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * MB

# --- CLIP and the media pipeline ------------------------------------------------

# A hub id or a local directory (`manage.py build_clip_model DIR`); `make demo`
# and `make test` point it at a tiny model they build, since no weights can be
# downloaded there.
CLIP_MODEL = env.str("CLIP_MODEL", default="openai/clip-vit-base-patch32")
# Where and how the model runs (media_pipeline/runtimes.py): `auto` takes this
# machine's default, the fastest runtime and precision measured on such a CPU
# whose vectors stay at a mean cosine of 0.99 to fp32's (bench/ingest.py, docs/BENCHMARKS.md);
# CUDA when torch sees a GPU.
CLIP_RUNTIME = env.str("CLIP_RUNTIME", default="auto")  # auto, torch, onnxruntime or openvino
CLIP_PRECISION = env.str("CLIP_PRECISION", default="auto")  # auto, fp32, bf16, int8 or fp16 (CUDA)
CLIP_DEVICE = env.str("CLIP_DEVICE", default="auto")  # auto, cpu or cuda
for _name, _value, _allowed in (
    ("CLIP_RUNTIME", CLIP_RUNTIME, ("auto", "torch", "onnxruntime", "openvino")),
    ("CLIP_PRECISION", CLIP_PRECISION, ("auto", "fp32", "bf16", "int8", "fp16")),
    ("CLIP_DEVICE", CLIP_DEVICE, ("auto", "cpu", "cuda")),
):
    if _value not in _allowed:
        raise ImproperlyConfigured(f"{_name} must be one of {', '.join(_allowed)}, got {_value!r}")
# Images or texts per forward pass; unset: 32 on the CPU, 128 on CUDA.
CLIP_BATCH_SIZE = _positive_int("CLIP_BATCH_SIZE", 1) if env.str("CLIP_BATCH_SIZE", default="") else None
CLIP_TORCH_THREADS = env.int("CLIP_TORCH_THREADS", default=0)  # 0: the runtime's own default (every core)
if CLIP_TORCH_THREADS < 0:
    raise ImproperlyConfigured(f"CLIP_TORCH_THREADS must be 0 (every core) or more, got {CLIP_TORCH_THREADS}")
# Where the ONNX runtimes' export of the model goes (media_pipeline/onnx_export.py);
# empty: beside the model, or ~/.cache/stockmind/clip-exports where its directory is read-only.
CLIP_EXPORT_DIR = env.str("CLIP_EXPORT_DIR", default="")
# Ids per processing task: the worker reads a task's images in parallel, in
# batches of the model's size (CLIP_BATCH_SIZE), each embedded while the next
# is read and the last stored (bench/ingest.py). 1 gives a task per item.
MEDIA_TASK_BATCH_SIZE = _positive_int("MEDIA_TASK_BATCH_SIZE", 64)
# Threads a worker reads and preprocesses images with (Pillow releases the GIL).
MEDIA_DECODE_THREADS = _positive_int("MEDIA_DECODE_THREADS", os.cpu_count() or 1)
# JPEGs are decoded at a reduced DCT scale (1/2 to 1/8) while their short side
# stays at least this long, CLIP's input size by default: vectors at cosine
# 0.99998 to a full-size decode's (bench/ingest.py); 0 decodes at full size.
IMAGE_DRAFT_MIN_SIDE = env.int("IMAGE_DRAFT_MIN_SIDE", default=224)
# Load the model when the web process starts, not on its first search.
SEARCH_PRELOAD = env.bool("SEARCH_PRELOAD", default=False)
# How often beat checks that each large tenant has its own HNSW index
# (search/tenant_indexes.py); `manage.py reindex` does it at once.
SEARCH_INDEX_SYNC_SECONDS = _positive_int("SEARCH_INDEX_SYNC_SECONDS", 600)
# Searches and their feedback are kept this many days (the console's
# analytics read them); beat deletes older ones every SEARCH_LOG_PRUNE_SECONDS.
SEARCH_LOG_DAYS = _positive_int("SEARCH_LOG_DAYS", 90)
SEARCH_LOG_PRUNE_SECONDS = _positive_int("SEARCH_LOG_PRUNE_SECONDS", 3600)
# Beat rolls up the days just ended for the search analytics this often
# (search/search_days.py).
SEARCH_DAY_ROLLUP_SECONDS = _positive_int("SEARCH_DAY_ROLLUP_SECONDS", 3600)
# PostgreSQL's maintenance_work_mem while a tenant's index is built: a graph
# that outgrows it is built on disk, about 4 times slower (a 100,000-vector
# tenant needs about 300MB). A parallel build takes it from shared memory, so a
# database container needs that much /dev/shm (shm_size). Empty: the server's.
SEARCH_INDEX_BUILD_MEMORY = env.str("SEARCH_INDEX_BUILD_MEMORY", default="1GB")
if SEARCH_INDEX_BUILD_MEMORY and not (
    SEARCH_INDEX_BUILD_MEMORY[:-2].isdigit() and SEARCH_INDEX_BUILD_MEMORY[-2:] in ("kB", "MB", "GB")
):
    raise ImproperlyConfigured(
        f"SEARCH_INDEX_BUILD_MEMORY must look like 512MB or 1GB, got {SEARCH_INDEX_BUILD_MEMORY!r}"
    )
VIDEO_SAMPLE_SECONDS = env.float("VIDEO_SAMPLE_SECONDS", default=1.0)
if VIDEO_SAMPLE_SECONDS <= 0:
    raise ImproperlyConfigured("VIDEO_SAMPLE_SECONDS must be positive")
VIDEO_MAX_FRAMES = _positive_int("VIDEO_MAX_FRAMES", 300)
# Claims of one media item before it is failed for good (the sweeper counts them).
MEDIA_MAX_ATTEMPTS = _positive_int("MEDIA_MAX_ATTEMPTS", 3)
# A `pending` item untouched for this long lost its queue message: requeue it.
PENDING_REQUEUE_MINUTES = _positive_int("PENDING_REQUEUE_MINUTES", 10)
SWEEP_INTERVAL_SECONDS = _positive_int("SWEEP_INTERVAL_SECONDS", 60)

# --- Webhooks (API.md "Webhooks", catalog/webhooks.py) ---------------------------

# Seconds from each failed attempt to the next: the first retry within a
# minute, then growing, the last attempt 27 h 35 min after the first (Standard
# Webhooks' suggested schedule). After the last one the delivery has failed.
WEBHOOK_RETRY_DELAYS_S = tuple(
    env.list("WEBHOOK_RETRY_DELAYS_S", cast=float, default=[5, 300, 1800, 7200, 18000, 36000, 36000])
)
if not WEBHOOK_RETRY_DELAYS_S or min(WEBHOOK_RETRY_DELAYS_S) <= 0:
    raise ImproperlyConfigured("WEBHOOK_RETRY_DELAYS_S must be positive seconds, comma-separated")
# A receiver has this long to connect and answer; a worker never waits longer on one.
WEBHOOK_TIMEOUT_S = env.float("WEBHOOK_TIMEOUT_S", default=10.0)
if not 0 < WEBHOOK_TIMEOUT_S <= 60:
    raise ImproperlyConfigured("WEBHOOK_TIMEOUT_S must be between 0 and 60 seconds")
# An endpoint whose every attempt failed for this long is deactivated.
WEBHOOK_DISABLE_AFTER_S = _positive_int("WEBHOOK_DISABLE_AFTER_S", 86400)
# Beat sends the deliveries whose retry is due this often (a retry due sooner
# than WEBHOOK_COUNTDOWN_MAX_S is sent by a countdown instead, on time).
WEBHOOK_SWEEP_SECONDS = _positive_int("WEBHOOK_SWEEP_SECONDS", 30)
WEBHOOK_COUNTDOWN_MAX_S = _positive_int("WEBHOOK_COUNTDOWN_MAX_S", 60)
# Development and tests only: URLs on http and on loopback or private hosts.
# `check --deploy` warns while it is on.
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)

# --- Celery and Redis -----------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Redis redelivers an unacknowledged message after this many seconds; it must
# exceed the longest task (a 10-minute video) or the task runs twice.
# Workers look for such lost (unacknowledged, timed-out) messages this often.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "unacked_restore_interval": _positive_int("CELERY_UNACKED_RESTORE_SECONDS", 30),
    "unacked_restore_throttle": 1,
}

# Queue and task names live in config/queues.py and nowhere else.
CELERY_TASK_DEFAULT_QUEUE = QUEUE_MAINTENANCE
# A task that hangs (a decoder stuck on a hostile file) is killed, its item
# redelivered and, after MEDIA_MAX_ATTEMPTS, failed: a 10-minute video takes
# well under this on one core.
CELERY_TASK_TIME_LIMIT = _positive_int("CELERY_TASK_TIME_LIMIT", 1800)
CELERY_BEAT_SCHEDULE = {
    "sweep-media": {
        "task": SWEEP_MEDIA_TASK,
        "schedule": SWEEP_INTERVAL_SECONDS,
        "options": {"queue": QUEUE_MAINTENANCE, "expires": SWEEP_INTERVAL_SECONDS},
    },
    "sync-tenant-indexes": {
        "task": SYNC_TENANT_INDEXES_TASK,
        "schedule": SEARCH_INDEX_SYNC_SECONDS,
        "options": {"queue": QUEUE_MAINTENANCE, "expires": SEARCH_INDEX_SYNC_SECONDS},
    },
    "prune-search-log": {
        "task": PRUNE_SEARCH_LOG_TASK,
        "schedule": SEARCH_LOG_PRUNE_SECONDS,
        "options": {"queue": QUEUE_MAINTENANCE, "expires": SEARCH_LOG_PRUNE_SECONDS},
    },
    "roll-up-search-days": {
        "task": ROLL_UP_SEARCH_DAYS_TASK,
        "schedule": SEARCH_DAY_ROLLUP_SECONDS,
        "options": {"queue": QUEUE_MAINTENANCE, "expires": SEARCH_DAY_ROLLUP_SECONDS},
    },
    "send-due-webhooks": {
        "task": SEND_DUE_WEBHOOKS_TASK,
        "schedule": WEBHOOK_SWEEP_SECONDS,
        "options": {"queue": QUEUE_WEBHOOKS, "expires": WEBHOOK_SWEEP_SECONDS},
    },
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env.str("CACHE_URL", default=REDIS_URL),
    }
}

# --- Admin import and export of products (django-import-export) -------------------
# The uploaded file waits for the operator's confirmation in Redis, not in one
# web process's temp folder, so the confirming request may land on another
# process or machine. An upload is at most DATA_UPLOAD_MAX_MEMORY_SIZE-sized
# form data plus the file (FILE_UPLOAD limits); it expires after a day.
IMPORT_EXPORT_TMP_STORAGE_CLASS = "import_export.tmp_storages.CacheStorage"
# An import adds and changes products: it needs the right to change them; an export, to view them.
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "change"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
IMPORT_EXPORT_USE_TRANSACTIONS = True

# --- REST framework -------------------------------------------------------------

# Requests per API key: "<n>/<second|minute|hour|day>" (DRF's format, e.g.
# 600/min), counted across all web processes; empty turns the limit off.
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="1200/min")
if API_RATE_LIMIT:
    _count, _, _period = API_RATE_LIMIT.partition("/")
    if not (_count.isdigit() and int(_count) > 0 and _period[:1] in ("s", "m", "h", "d")):
        raise ImproperlyConfigured(f"API_RATE_LIMIT must look like 600/min or 20/s, got {API_RATE_LIMIT!r}")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["catalog.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["catalog.api.auth.HasApiKeyScope"],
    "DEFAULT_PAGINATION_CLASS": "catalog.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # JSON bodies; the operations that take a file say multipart themselves.
    # A form cannot carry what the JSON does (an attributes object, a null).
    "DEFAULT_PARSER_CLASSES": ["catalog.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "catalog.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["catalog.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Stock Mind API",
    "DESCRIPTION": "Visual product search: catalog, media uploads and search. See shared/API.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SECURITY": [{"ApiKey": []}],
    # Request bodies as their own components: what a client sends, apart from what it reads back.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "search.api.openapi.document_errors"],
}

# --- security -------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Production serves HTTPS only: the Dockerfile turns these on (and
# tests/test_security.py runs `check --deploy` with its environment). They are
# off by default so that local runs over plain HTTP on loopback work.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# Load balancers probe health and scrape metrics over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_BEHIND_PROXY", default=False) else None
)

# --- logging --------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
