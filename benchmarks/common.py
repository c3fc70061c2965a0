"""What every benchmark shares: services, a throwaway database, Django in production
settings, the Stripe emulator, gunicorn, figures and the table.

A benchmark module exposes ``add_arguments(parser)`` and ``run(env, args) -> list[Figure]``
and ends with ``main_for(module)``; ``python -m benchmarks`` runs them all in one
environment, ``python -m benchmarks.bench_<name>`` one of them in its own.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meterdesk_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
SECRET_KEY = "meterdesk-benchmarks-not-a-secret-0123456789abcdef"
CATALOG = ROOT / "billing" / "catalog" / "demo.toml"


class ServiceUnavailable(RuntimeError):
    pass


class Invalid(AssertionError):
    """A benchmark's own result check failed: its figures must not be reported."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Invalid(message)


# -- figures and the table -----------------------------------------------------------------
@dataclass
class Figure:
    """One measured number, next to its same-run baseline and its target when it has them."""

    name: str  # stable key, e.g. "ingest.events_per_second"
    label: str  # what the table shows
    value: float
    unit: str
    baseline: float | None = None  # same-run baseline (same unit)
    baseline_label: str = ""
    target: str = ""  # human text, e.g. ">= 25,000/s"
    met: bool | None = None  # None: no target
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "ms":
        text = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    elif unit == "ratio" or abs(value) < 10:
        text = f"{value:,.3g}" if value else "0"
    else:
        text = f"{value:,.0f}"
    suffix = {"": "", "ratio": "x", "%": "%"}.get(unit, f" {unit}")
    return text + suffix


def table(figures: list[Figure]) -> str:
    rows = [("figure", "measured", "baseline (same run)", "ratio", "target", "met?")]
    for f in figures:
        baseline = fmt(f.baseline, f.unit) if f.baseline is not None else "-"
        if f.baseline_label and f.baseline is not None:
            baseline += f" ({f.baseline_label})"
        ratio = f"{f.ratio:.3g}" if f.ratio is not None else "-"
        met = "-" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.label, fmt(f.value, f.unit), baseline, ratio, f.target or "-", met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            " | ".join(
                cell.ljust(widths[i]) if i in (0, 2, 4) else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
        )
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


# -- machine ---------------------------------------------------------------------------
def machine() -> dict:
    mem_total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "ram_bytes": mem_total,
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def loadavg() -> list[float]:
    """1, 5 and 15 minute load averages: the machine is shared, so they go in the results."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS of a live process, in bytes (0 when it is gone)."""
    out = {"VmHWM": 0, "VmRSS": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in out:
                out[key] = int(rest.split()[0]) * 1024
    return out


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


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


# -- accounts ------------------------------------------------------------------------------
def make_account(
    *, name: str, plan_key: str | None, env: Env, period_started_days_ago: float = 0.0
):
    """An account with a Stripe customer in the emulator and, with ``plan_key``, a
    subscription. ``period_started_days_ago`` puts the customer on a test clock frozen
    that long ago, so its current period started then (the clock is not advanced)."""
    from billing.services.accounts import account_create, account_ensure_stripe_customer
    from billing.services.subscriptions import subscription_create
    from billing.stripe_api import stripe_client

    email = re.sub(r"\W", "", name).lower() + "@bench.test"
    account = account_create(name=name, billing_email=email)
    clock = None
    if period_started_days_ago:
        frozen = int(time.time() - period_started_days_ago * 86400)
        clock = stripe_client().v1.test_helpers.test_clocks.create({"frozen_time": frozen}).id
    if plan_key:
        subscription_create(
            account=account, plan=env.plans[plan_key], payment_method=None, test_clock=clock
        )
    else:
        account_ensure_stripe_customer(account=account, test_clock=clock)
    return account


def customer_id(account) -> str:
    return account.djstripe_customers.get().id


def login_cookie(account, username: str) -> str:
    """A session for a new owner of the account, as a ``Cookie`` header value."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from billing.models import Membership
    from billing.services.accounts import membership_add

    user = get_user_model().objects.create_user(username, password="bench-password-123")
    membership_add(account=account, user=user, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def ingest_key() -> str:
    from usage.services.keys import ingest_key_create

    return ingest_key_create(name="benchmarks")[1]


# -- gunicorn --------------------------------------------------------------------------
@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    workers: int
    threads: int

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def worker_pids(self) -> list[int]:
        return children_of(self.proc.pid)

    def peak_rss(self) -> dict:
        """Peak resident memory (VmHWM) of each web worker and of the master."""
        workers = {pid: proc_status(pid)["VmHWM"] for pid in self.worker_pids()}
        return {"master": proc_status(self.proc.pid)["VmHWM"], "workers": workers}

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


@contextlib.contextmanager
def gunicorn(env: Env, *, workers: int, threads: int, log_path: Path | None = None):
    """gunicorn serving config.wsgi in production settings (gthread: keep-alive)."""
    from stripe_emulator.testing import free_port

    port = free_port()
    log_path = log_path or env.tmp / f"gunicorn-{port}.log"
    out = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--keep-alive",
            "30",
            "--backlog",
            "256",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    server = Server(proc=proc, port=port, workers=workers, threads=threads)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-2000:]}")
            try:
                conn = server.connection(timeout=2)
                conn.request("GET", "/accounts/login/")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not answer within 30 s") from None
                time.sleep(0.1)
        # Every worker imports the app lazily: warm each one.
        for _ in range(workers * threads * 2):
            conn = server.connection()
            conn.request("GET", "/accounts/login/")
            conn.getresponse().read()
            conn.close()
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def raw_sql(sql: str, params=None, *, fetch: bool = True):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if fetch and cursor.description else None


# -- running ---------------------------------------------------------------------------
def write_results(
    figures: list[Figure],
    *,
    sizes: dict,
    path: Path,
    started: float,
    failures=(),
    commit: str | None = None,
) -> None:
    from django.db import connection

    pg_version = raw_sql("SHOW server_version")[0][0]
    pg_settings = {
        name: raw_sql(f"SHOW {name}")[0][0]
        for name in ("shared_buffers", "work_mem", "max_wal_size", "synchronous_commit")
    }
    data = {
        "commit": commit or git_commit(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_seconds": round(time.time() - started, 1),
        "machine": machine(),
        "postgres": pg_version,
        "postgres_settings": pg_settings,
        "database": connection.settings_dict["NAME"],
        "sizes": sizes,
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
        "failures": list(failures),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


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
    except Invalid as exc:
        print(f"INVALID RESULT: {exc}", file=sys.stderr)
        return 1
    # A missed target is a finding reported in the table, not a failure of the run.
    return 0


def vars_of(args) -> dict:
    skip = {"database_url", "redis_url", "keep_db", "json", "fresh_schema"}
    return {k: v for k, v in vars(args).items() if k not in skip and not callable(v)}
