import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import ROOT


def test_database_follows_database_url(db):
    expected = (
        "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    )
    assert connection.vendor == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 + 1")
        assert cursor.fetchone()[0] == 2


def test_celery_broker_follows_redis_url():
    if os.environ.get("REDIS_URL"):
        assert os.environ["REDIS_URL"] == settings.CELERY_BROKER_URL
    else:
        assert settings.CELERY_BROKER_URL == "filesystem://"
        assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"].endswith("broker")


def test_celery_is_json_only():
    from config.celery import app

    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_time_limit > app.conf.task_soft_time_limit > 0


def test_stripe_api_host_defaults_to_local_emulator():
    env = {k: v for k, v in os.environ.items() if k != "STRIPE_API_HOST"}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            "print(settings.STRIPE_API_HOST)",
        ],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.local"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "http://127.0.0.1:12111"


def _production(extra: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
        and not k.startswith("STRIPE_")  # a developer's Stripe settings are not the test's
    }
    env.update(extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args, "--settings=config.settings.production"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_production_refuses_to_start_without_secret_key():
    result = _production({"ALLOWED_HOSTS": "example.com"}, "check")
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


@pytest.mark.slow
def test_production_passes_deploy_checks_with_its_variables():
    result = _production(
        {"SECRET_KEY": "x" * 30 + "-y7*Hq!93kLzP0wQeR2tU5vB8nM1", "ALLOWED_HOSTS": "example.com"},
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues (0 silenced)" in result.stdout


_AXES_PROBE = """
import json
import django
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings

django.setup()
found = {}
without = [m for m in settings.MIDDLEWARE if m != "axes.middleware.AxesMiddleware"]
for name, override in (
    ("middleware", {"MIDDLEWARE": without}),
    ("backend", {"AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.ModelBackend"]}),
):
    with override_settings(**override):
        try:
            call_command("check", deploy=True, fail_level="WARNING")
            found[name] = ""
        except SystemCheckError as exc:
            found[name] = str(exc)
print(json.dumps({
    "apps": settings.INSTALLED_APPS, "middleware": settings.MIDDLEWARE,
    "backends": settings.AUTHENTICATION_BACKENDS, "found": found,
}))
"""


@pytest.mark.slow
def test_production_deploy_checks_cover_login_throttling():
    """django-axes (issue 12, item 6) is installed in production with its middleware last
    and its backend first, and ``check --deploy`` is what catches either going missing
    (axes.W002 / axes.W003), so the deploy test above guards them."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE"} and not k.startswith("STRIPE_")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": "x" * 30 + "-y7*Hq!93kLzP0wQeR2tU5vB8nM1",
            "ALLOWED_HOSTS": "example.com",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", _AXES_PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "axes" in seen["apps"]
    assert seen["middleware"][-1] == "axes.middleware.AxesMiddleware"
    assert seen["backends"][0] == "axes.backends.AxesStandaloneBackend"
    assert "axes.W002" in seen["found"]["middleware"]
    assert "axes.W003" in seen["found"]["backend"]


@pytest.mark.slow
def test_production_collectstatic_resolves_every_reference(tmp_path):
    """ManifestStaticFilesStorage rewrites every url() and sourceMappingURL: a vendored
    file naming a missing one would make production unable to render any page."""
    result = _production(
        {
            "SECRET_KEY": "x" * 30 + "-y7*Hq!93kLzP0wQeR2tU5vB8nM1",
            "ALLOWED_HOSTS": "example.com",
            "STATIC_ROOT": str(tmp_path / "static"),
        },
        "collectstatic",
        "--no-input",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = (tmp_path / "static" / "staticfiles.json").read_text()
    assert "vendor/chart-4.6.1.umd.min.js" in manifest
    assert "vendor/htmx-2.0.11.min.js" in manifest


def test_the_suite_runs_on_the_test_settings_whatever_the_shell_exports():
    """``make test`` pins ``--ds=config.settings.test``: a developer who exported
    ``DJANGO_SETTINGS_MODULE=config.settings.local`` for ``manage.py`` still gets the
    test settings (local ones broke 6 billing tests)."""
    assert settings.SETTINGS_MODULE == "config.settings.test"
    makefile = (ROOT / "Makefile").read_text()
    assert "pytest --ds=config.settings.test" in makefile


def test_no_test_reads_the_developers_stripe_api_host():
    """An exported STRIPE_API_HOST (perhaps real Stripe) or key never reaches the tests."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "STRIPE_API_HOST": "https://api.stripe.com",
        "STRIPE_TEST_SECRET_KEY": "sk_test_" + "a-developers-real-key-0000000000",
        "STRIPE_LIVE_MODE": "true",
    }
    env.pop("MD_TEST_STRIPE_API_HOST", None)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s;"
            "print(s.STRIPE_API_HOST, s.STRIPE_TEST_SECRET_KEY, s.STRIPE_LIVE_MODE)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == [
        "http://127.0.0.1:12111",
        "sk_test_MeterdeskLocalEmulatorKey000000",
        "False",
    ]
