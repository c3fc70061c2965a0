"""Settings shared by every environment. Everything comes from environment variables.

Reading settings does no work: no network, no database, no file writes. The only
filesystem effect is deciding paths (under ``var/``) that other code creates when it
needs them.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="insecure-local-only-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "billing.admin_site.MeterdeskAdminConfig",  # django.contrib.admin, Meterdesk's index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    # Optional sign-in with the operator's OIDC provider (see "Sign-in with OIDC" below).
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "template_partials",
    "djstripe",
    "billing",
    "usage",
    "dashboards",
    "revenue",
    "demo",
]

MIDDLEWARE = [
    "billing.middleware.drop_webhook_secret_override",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.replica_middleware.ReplicaReadsMiddleware",  # dashboards read a replica, if set
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",  # required by allauth.account
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
            ],
        },
    },
]

# Database: PostgreSQL in production and CI; a SQLite file under var/ by default.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'meterdesk.sqlite3'}")
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# Dashboards on a streaming replica (config/db_router.py, config/replica_middleware.py):
# with DATABASE_REPLICA_URL (a hot standby of DATABASE_URL) the customer pages' GET
# requests read from it; writes, sign-in and access tables, transactions, and a browser's
# reads for DATABASE_REPLICA_PIN_SECONDS after its last write stay on the primary.
# Unset: no replica alias, everything on default.
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    _replica = env.db_url_config(DATABASE_REPLICA_URL)
    DATABASES["replica"] = {
        **_replica,
        "ATOMIC_REQUESTS": False,
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
        "OPTIONS": {**DATABASES["default"].get("OPTIONS", {}), **_replica.get("OPTIONS", {})},
    }
DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
DATABASE_REPLICA_PIN_SECONDS = env.float("DATABASE_REPLICA_PIN_SECONDS", default=5.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Login throttling (django-axes): after AUTH_LOCKOUT_FAILURES wrong passwords for one
# username (from anywhere) or from one IP address (against any usernames), that username
# or address is locked out for AUTH_LOCKOUT_MINUTES; a success resets the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AUTH_LOCKOUT_FAILURES", default=10)
AXES_COOLOFF_TIME = env.int("AUTH_LOCKOUT_MINUTES", default=15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Behind N trusted proxies the client is the N-th X-Forwarded-For entry from the right.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"
# Password-reset e-mails per address, and reset requests per client address, per hour.
PASSWORD_RESET_PER_ADDRESS = env.int("PASSWORD_RESET_PER_ADDRESS", default=3)
PASSWORD_RESET_PER_IP = env.int("PASSWORD_RESET_PER_IP", default=20)
LOGIN_REDIRECT_URL = "dashboards:home"
LOGOUT_REDIRECT_URL = "login"
# Sign-in with OIDC (optional): members may also sign in with the operator's OpenID Connect
# provider, through django-allauth's openid_connect provider mounted at /sso/ (config/urls.py)
# and configured here only (no SocialApp rows). Off unless OIDC_SERVER_URL (the issuer; its
# discovery document is at <issuer>/.well-known/openid-configuration) and OIDC_CLIENT_ID are
# set: then /sso/ is mounted and the login page shows "Sign in with OIDC_PROVIDER_NAME".
# The provider's verified e-mail must be an existing active member's (dashboards.oidc);
# it never creates users. The login stays with ModelBackend (allauth picks it; axes'
# standalone backend has no get_user), so no allauth backend is added.
OIDC_PROVIDER_ID = env("OIDC_PROVIDER_ID", default="operator")  # in the callback path
OIDC_PROVIDER_NAME = env("OIDC_PROVIDER_NAME", default="single sign-on")
OIDC_SERVER_URL = env("OIDC_SERVER_URL", default="")
OIDC_CLIENT_ID = env("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env("OIDC_CLIENT_SECRET", default="")
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": (
            [
                {
                    "provider_id": OIDC_PROVIDER_ID,
                    "name": OIDC_PROVIDER_NAME,
                    "client_id": OIDC_CLIENT_ID,
                    "secret": OIDC_CLIENT_SECRET,
                    "settings": {"server_url": OIDC_SERVER_URL},
                }
            ]
            if OIDC_SERVER_URL and OIDC_CLIENT_ID
            else []
        ),
    }
}
SOCIALACCOUNT_ADAPTER = "dashboards.oidc.MembersOnlySocialAccountAdapter"
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"  # the provider's email_verified claim is checked
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # matching by e-mail is dashboards.oidc's, with rules
SOCIALACCOUNT_STORE_TOKENS = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))

# Email
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
# The public base URL, for links in emails sent from background tasks.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Meterdesk <billing@meterdesk.local>")
# The embeddable usage widget (dashboards.embed_views): the origins allowed to frame it
# (Content-Security-Policy frame-ancestors; none set: 'none'), e.g.
# "https://app.example.com,https://admin.example.com", and the longest life of its tokens.
EMBED_ALLOWED_ORIGINS = env.list("EMBED_ALLOWED_ORIGINS", default=[])
EMBED_TOKEN_MAX_TTL_SECONDS = env.int("EMBED_TOKEN_MAX_TTL_SECONDS", default=3600)

# Redis and Celery. Without REDIS_URL the embedded default is kombu's filesystem
# transport under var/, so a real worker and beat run with no service installed.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {}
    if REDIS_URL
    else {
        "data_folder_in": str(VAR_DIR / "celery" / "broker"),
        "data_folder_out": str(VAR_DIR / "celery" / "broker"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
)
CELERY_RESULT_BACKEND = REDIS_URL or f"file://{VAR_DIR / 'celery' / 'results'}"
# Cache: Redis when available (shared by every process), else per-process memory.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")

# Stripe and dj-stripe
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
# dj-stripe wants a real-looking key (24+ characters after the prefix); the emulator
# accepts any sk_test_ key.
STRIPE_TEST_SECRET_KEY = env(
    "STRIPE_TEST_SECRET_KEY", default="sk_test_MeterdeskLocalEmulatorKey000000"
)
STRIPE_LIVE_SECRET_KEY = env("STRIPE_LIVE_SECRET_KEY", default="")
STRIPE_API_VERSION = "2026-05-27.dahlia"
STRIPE_TIMEOUT_SECONDS = env.int("STRIPE_TIMEOUT_SECONDS", default=20)
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_SUBSCRIBER_MODEL = "billing.Account"
DJSTRIPE_SUBSCRIBER_MODEL_REQUEST_CALLBACK = "billing.selectors.account_for_request"
DJSTRIPE_WEBHOOK_EVENT_CALLBACK = None
# How long an account may stay past_due (failed payment) before it is suspended.
BILLING_PAST_DUE_GRACE_HOURS = env.int("BILLING_PAST_DUE_GRACE_HOURS", default=72)
# Members: how long an invitation link stays valid, and whether viewers (the usage-only
# role) see money amounts on the usage pages.
BILLING_INVITATION_TTL_HOURS = env.int("BILLING_INVITATION_TTL_HOURS", default=72)
BILLING_VIEWERS_SEE_AMOUNTS = env.bool("BILLING_VIEWERS_SEE_AMOUNTS", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "stripe": {"level": "WARNING"}},
}

# Usage ledger and reporting to Stripe (usage/). See README "Configuration".
# How long ingestion caches the active meters by event name (0 disables the cache).
USAGE_METER_CACHE_SECONDS = env.int("USAGE_METER_CACHE_SECONDS", default=30)
# Seconds between beat's syncs of meter status from Stripe (GET /v1/billing/meters).
BILLING_METER_SYNC_SECONDS = env.float("BILLING_METER_SYNC_SECONDS", default=300.0)
# Ingestion accepts timestamps back to 35 days (Stripe's window) less the batching wait,
# one reporting pass, the sender's too-late margin and this much more (for retries).
USAGE_INGEST_PAST_MARGIN_SECONDS = env.int("USAGE_INGEST_PAST_MARGIN_SECONDS", default=3600)
# Global limit on meter-event calls to Stripe from every worker together (Stripe
# allows 1,000/s per account for v1 meter events, shared with other traffic).
USAGE_REPORT_MAX_CALLS_PER_SECOND = env.float("USAGE_REPORT_MAX_CALLS_PER_SECOND", default=100.0)
# A report being sent is leased for this long; a sender that died (SIGKILL) leaves a
# lease that expires, and the report is resent with the same identifier. Longer than
# stripe-python's 80 s request timeout, so a slow call is never sent twice at once.
USAGE_REPORT_LEASE_SECONDS = env.int("USAGE_REPORT_LEASE_SECONDS", default=120)
# Retry backoff after 429 / 5xx / timeouts: base * 2**(attempt-1), capped, with jitter.
USAGE_REPORT_RETRY_BASE_SECONDS = env.float("USAGE_REPORT_RETRY_BASE_SECONDS", default=2.0)
USAGE_REPORT_RETRY_MAX_SECONDS = env.float("USAGE_REPORT_RETRY_MAX_SECONDS", default=300.0)
# After this many failed attempts a report is marked failed for staff (admin: retry).
USAGE_REPORT_MAX_ATTEMPTS = env.int("USAGE_REPORT_MAX_ATTEMPTS", default=50)
# At most this many events are claimed per (customer, meter) in one pass.
USAGE_REPORT_CLAIM_LIMIT = env.int("USAGE_REPORT_CLAIM_LIMIT", default=50000)
# Seconds between reporting passes run by Celery beat.
USAGE_REPORT_INTERVAL_SECONDS = env.float("USAGE_REPORT_INTERVAL_SECONDS", default=10.0)
# Seconds between the alert sweeps run by Celery beat (ingestion also queues evaluations).
USAGE_ALERT_SWEEP_SECONDS = env.float("USAGE_ALERT_SWEEP_SECONDS", default=60.0)
# Seconds between beat's passes over alert webhook / Slack deliveries due for a retry.
USAGE_ALERT_CHANNEL_RETRY_SECONDS = env.float("USAGE_ALERT_CHANNEL_RETRY_SECONDS", default=30.0)
# SSRF guard: alert webhooks and Slack URLs whose host is (or resolves to) a private,
# loopback, link-local, multicast, reserved or unspecified address are refused unless
# this is true (tests and the local demo, whose receivers listen on 127.0.0.1).
ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS = env.bool("ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS", default=False)
# Batching: a (customer, meter) is reported once it has this many unreported events, or
# its oldest has waited this long; fewer, larger meter events at steady load.
USAGE_REPORT_BATCH_MIN_EVENTS = env.int("USAGE_REPORT_BATCH_MIN_EVENTS", default=1000)
USAGE_REPORT_BATCH_MAX_WAIT_SECONDS = env.int("USAGE_REPORT_BATCH_MAX_WAIT_SECONDS", default=300)
# Which Stripe endpoint reports usage: "v1" (POST /v1/billing/meter_events, one report a
# call, a synchronous answer per report) or "v2_stream" (the v2 meter event stream: up to
# 100 reports a call on a 15-minute session token, v1 as fallback; usage/services/
# report_stream.py; about 28 calls per million events against v1's 938 in make bench).
USAGE_REPORT_TRANSPORT = env("USAGE_REPORT_TRANSPORT", default="v2_stream")
# Reconciliation looks at periods that ended up to this many days ago.
USAGE_RECONCILE_LOOKBACK_DAYS = env.int("USAGE_RECONCILE_LOOKBACK_DAYS", default=40)
