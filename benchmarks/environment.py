"""The benchmark environment: PostgreSQL and Redis checked, a throwaway database
(copied from a saved schema when migrations are unchanged), the Stripe emulator with the
demo catalog, Django in production settings; and ``main_for``, which runs one benchmark
in it."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.common import (
    CATALOG,
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    ROOT,
    SECRET_KEY,
    Invalid,
    PartlyFailed,
    ServiceUnavailable,
    Timer,
    log,
    table,
    vars_of,
    write_results,
)


# -- services --------------------------------------------------------------------------
def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def check_services(database_url: str, redis_url: str) -> list[str]:
    problems = []
    try:
        import psycopg

        with psycopg.connect(_with_db(database_url, "postgres"), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        problems.append(
            f"PostgreSQL is not reachable at {_with_db(database_url, 'postgres')}: {exc}"
        )
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except Exception as exc:
        problems.append(f"Redis is not reachable at {redis_url}: {exc}")
    return problems


def _bench_db_name(database_url: str) -> str:
    name = db_name(database_url)
    if "bench" not in name or name in ("test", "postgres"):
        raise SystemExit(
            f"refusing to drop and create database {name!r}: the benchmark database's "
            "name must contain 'bench'"
        )
    return name


def recreate_database(
    database_url: str, *, drop_only: bool = False, template: str | None = None
) -> None:
    import psycopg

    name = _bench_db_name(database_url)
    with psycopg.connect(_with_db(database_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')


def schema_key() -> str:
    """What the migrated schema depends on: every migration file and dj-stripe's version."""
    from importlib.metadata import version

    digest = hashlib.sha256(version("dj-stripe").encode())
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return "meterdesk-bench schema " + digest.hexdigest()[:24]


def schema_template(database_url: str, *, save: bool = False) -> str | None:
    """``<name>_schema``: an empty, migrated copy of the database, reused while no
    migration changes (migrating from scratch takes most of a minute here). Returns its
    name when it is current; ``save=True`` snapshots the (just migrated) database."""
    import psycopg

    name = _bench_db_name(database_url)
    template, key = f"{name}_schema", schema_key()
    with psycopg.connect(_with_db(database_url, "postgres"), autocommit=True) as conn:
        if save:
            conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{template}" TEMPLATE "{name}"')
            conn.execute(f"COMMENT ON DATABASE \"{template}\" IS '{key}'")
            return template
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [template],
        ).fetchone()
    return template if row and row[0] == key else None


# -- the environment ---------------------------------------------------------------------
@dataclass
class Env:
    database_url: str
    redis_url: str
    emulator_url: str
    emulator_log: Path
    tmp: Path
    plans: dict
    _port_seq: int = 0

    def emulator_requests(self, method: str, path_prefix: str) -> int:
        """How many requests the emulator logged for ``METHOD /path...`` so far."""
        pattern = re.compile(rf'"{method} {re.escape(path_prefix)}[^"]*" (\d+)')
        text = self.emulator_log.read_text(errors="replace")
        return len(pattern.findall(text))


def django_environment(env_vars: dict) -> None:
    os.environ.update(env_vars)
    import django

    django.setup()


@contextlib.contextmanager
def environment(args) -> Iterator[Env]:
    """Services checked, a fresh database migrated, the emulator running with the demo
    catalog applied, Django set up in production settings; everything undone after."""
    from stripe_emulator.testing import running_emulator

    problems = check_services(args.database_url, args.redis_url)
    if problems:
        raise ServiceUnavailable("; ".join(problems))
    tmp = Path(tempfile.mkdtemp(prefix="meterdesk-bench-"))
    template = None if getattr(args, "fresh_schema", False) else schema_template(args.database_url)
    recreate_database(args.database_url, template=template)
    log(
        f"database {db_name(args.database_url)} created"
        + (f" from {template} (migrations unchanged)" if template else "")
        + f"; scratch files in {tmp}"
    )
    emulator_log = tmp / "emulator.log"
    try:
        with (
            emulator_log.open("w") as log_file,
            running_emulator("--verbose", log=log_file) as emulator_url,
        ):
            django_environment(
                {
                    "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
                    "SECRET_KEY": SECRET_KEY,
                    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
                    "SECURE_SSL_REDIRECT": "false",
                    "DATABASE_URL": args.database_url,
                    "REDIS_URL": args.redis_url,
                    "STRIPE_API_HOST": emulator_url,
                    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
                    "LOG_LEVEL": "WARNING",
                }
            )
            from django.core.management import call_command

            with Timer() as t:
                call_command("migrate", verbosity=0, interactive=False)
            log(f"migrated in {t.seconds:.1f}s")
            if template is None:
                from django.db import connections

                connections.close_all()
                log(f"schema saved as {schema_template(args.database_url, save=True)}")
            from billing.catalog.spec import load_catalog
            from billing.models import Plan
            from billing.services.catalog import catalog_apply

            catalog_apply(catalog=load_catalog(CATALOG))
            plans = {plan.key: plan for plan in Plan.objects.all()}
            yield Env(
                database_url=args.database_url,
                redis_url=args.redis_url,
                emulator_url=emulator_url,
                emulator_log=emulator_log,
                tmp=tmp,
                plans=plans,
            )
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if not getattr(args, "keep_db", False):
            recreate_database(args.database_url, drop_only=True)
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(args.redis_url)
            for key in client.scan_iter(match="*meterdesk-benchmarks*"):
                client.delete(key)
        shutil.rmtree(tmp, ignore_errors=True)


def bench_database_url(url: str) -> str:
    """The server and credentials of ``url``, with a database of our own: a name without
    'bench' in it (the test database, an app database) becomes ``meterdesk_bench``."""
    if "bench" in db_name(url):
        return url
    return _with_db(url, db_name(DEFAULT_DATABASE_URL))


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=bench_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)),
        help="created and dropped by the run; a name without 'bench' in it is replaced by "
        f"meterdesk_bench (default $DATABASE_URL's server, or {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        help=f"default $REDIS_URL or {DEFAULT_REDIS_URL}",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database after")
    parser.add_argument(
        "--fresh-schema",
        action="store_true",
        help="migrate from scratch instead of copying the saved <name>_schema database",
    )


def main_for(module, argv=None) -> int:
    """``python -m benchmarks.bench_<name>``: one benchmark in its own environment."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {module.__spec__.name}", description=module.__doc__
    )
    common_arguments(parser)
    module.add_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    started = time.time()
    try:
        with environment(args) as env:
            figures = module.run(env, args)
            print(table(figures))
            if args.json:
                write_results(figures, sizes=vars_of(args), path=args.json, started=started)
    except ServiceUnavailable as exc:
        print(f"benchmarks need PostgreSQL and Redis: {exc}", file=sys.stderr)
        return 2
    except PartlyFailed as exc:
        print(table(exc.figures))
        print(f"FAILED {exc}", file=sys.stderr)
        return 1
    except Invalid as exc:
        print(f"INVALID RESULT: {exc}", file=sys.stderr)
        return 1
    # A missed target is a finding reported in the table, not a failure of the run.
    return 0
