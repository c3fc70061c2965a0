"""Tests: SQLite and eager Celery unless DATABASE_URL / REDIS_URL are set."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = False
STRIPE_API_HOST = env("STRIPE_API_HOST", default="http://127.0.0.1:12111")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tasks queued by code under test run in-process. Tests that need a real worker start
# one (tests/conftest.py) and publish with send_task, which always goes to the broker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SILENCED_SYSTEM_CHECKS = ["djstripe.W001"]
