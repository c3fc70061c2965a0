"""The suite builds its tables from the models (--no-migrations) for speed; this test
proves the migrations themselves apply to a fresh database and match the models.

Every app's migrations are applied, one by one, except dj-stripe's: its three pinned
migrations (0001-0003: 65 CreateModels, then 518 RemoveFields and 6 DeleteModels) cost
well over a minute of CPU, on SQLite as on PostgreSQL, and are dj-stripe's to test, not
ours; its tables are created from its models, as the suite's test databases
are (``migrate --run-syncdb`` with ``MIGRATION_MODULES = {"djstripe": None}``). No
other app's migration depends on dj-stripe's (checked first), so none is applied in
another order than in production. ``makemigrations --check`` then compares every app's
migrations, dj-stripe's included, with the models. Both commands run in one process.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

OUR_APPS = ("billing", "usage")

SCRIPT = """
import django
from django.conf import settings
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader

django.setup()
loader = MigrationLoader(None, ignore_no_migrations=True)
for (app, name), migration in sorted(loader.disk_migrations.items()):
    if app != "djstripe":
        after = [*migration.dependencies, *migration.run_before]
        assert all(dep[0] != "djstripe" for dep in after), f"{app}.{name} depends on djstripe"
print("migrations read:", len(loader.disk_migrations))
modules = settings.MIGRATION_MODULES
settings.MIGRATION_MODULES = {**modules, "djstripe": None}
call_command("migrate", interactive=False, run_syncdb=True)
settings.MIGRATION_MODULES = modules
call_command("makemigrations", check=True, dry_run=True)
print("makemigrations --check: no changes")
"""


@pytest.mark.slow
def test_migrations_apply_to_a_fresh_database_and_match_the_models(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
    }
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for app in OUR_APPS:
        assert f"Applying {app}.0001_initial... OK" in run.stdout
    assert "migrations read: " in run.stdout
    assert "Creating table djstripe_customer" in run.stdout
    assert "Applying djstripe." not in run.stdout
    assert "makemigrations --check: no changes" in run.stdout
