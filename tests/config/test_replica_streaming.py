"""Dashboards served from a real PostgreSQL streaming replica.

A throwaway primary cluster (initdb, on a free port; ``tests/reliability/postgres.py``)
and a hot standby made from it with ``pg_basebackup -R`` stream WAL to each other. The
suite's migrated schema is copied into the primary with pg_dump (running the migrations
takes minutes) and reaches the standby by streaming, like the rows the test writes.
Django's ``default`` points at the primary and ``replica`` at the standby for the test.

Replay on the standby is paused at one point, so the replica is behind in a way the test
controls: a member who has just saved a budget reads it back (from the primary), while
another member's page, read from the replica, does not show it until replay resumes.
"""

import os
import re
import shutil
import time

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.utils import load_backend
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.db_router import REPLICA
from config.replica_middleware import PIN_COOKIE, is_write_statement
from tests.reliability.postgres import ThrowawayPostgres, server_bin_dir, unavailable_reason

BUDGETS = reverse("dashboards:budgets")
HOME = reverse("dashboards:home")
SERVER_BINARIES = ("initdb", "pg_ctl", "pg_basebackup")


def missing_reason() -> str | None:
    folder = server_bin_dir()
    missing = [
        name
        for name in SERVER_BINARIES
        if not (folder and (folder / name).exists()) and not shutil.which(name)
    ]
    if missing:
        return (
            f"PostgreSQL server binaries ({', '.join(SERVER_BINARIES)}) not found: "
            f"{', '.join(missing)} missing from /usr/lib/postgresql/*/bin and PATH"
        )
    return unavailable_reason()


class Standby(ThrowawayPostgres):
    """A hot standby of ``primary``: a base backup with ``-R`` (standby.signal and
    primary_conninfo written for it), started on a port of its own."""

    def __init__(self, primary: ThrowawayPostgres) -> None:
        super().__init__()
        self.primary = primary

    def init(self) -> None:
        if self._as_postgres:
            import pwd

            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
            "-D", str(self.data), "-R", "-X", "stream", "-c", "fast", "--no-sync",
        )  # fmt: skip


def sql(dsn: str, statement: str, *params):
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(statement, params).fetchone()


def wait_caught_up(primary: ThrowawayPostgres, standby: Standby, *, timeout: float = 20) -> float:
    """Seconds until the standby has replayed everything the primary has written."""
    target = sql(primary.dsn(), "SELECT pg_current_wal_lsn()::text")[0]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        done = sql(
            standby.dsn(),
            "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s::pg_lsn) >= 0",
            target,
        )[0]
        if done:
            return time.monotonic() - started
        time.sleep(0.005)
    raise AssertionError(f"the standby did not replay up to {target} in {timeout} s")


pytestmark = pytest.mark.django_db  # the suite's database: the schema copied from it


@pytest.fixture
def streaming_pair(db):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs the suite on PostgreSQL (DATABASE_URL): the throwaway primary gets the "
            "suite's migrated schema with pg_dump"
        )
    primary = ThrowawayPostgres()
    standby = Standby(primary)
    try:
        primary.init()
        primary.start()
        standby.init()
        standby.start()
        assert sql(standby.dsn(), "SELECT pg_is_in_recovery()")[0] is True
        suite_database = connection.settings_dict["NAME"]
        primary.copy_database(os.environ["DATABASE_URL"], suite_database, "meterdesk")
        wait_caught_up(primary, standby)
        yield primary, standby
    finally:
        standby.destroy()
        primary.destroy()


@pytest.fixture
def on_the_pair(streaming_pair, stripe_emulator):
    """``default`` on the throwaway primary and ``replica`` on its standby, for this test."""
    primary, standby = streaming_pair
    base = connections[DEFAULT_DB_ALIAS].settings_dict
    saved = {
        alias: getattr(connections._connections, alias, None)
        for alias in (DEFAULT_DB_ALIAS, REPLICA)
    }
    wrappers = {}
    for alias, cluster in ((DEFAULT_DB_ALIAS, primary), (REPLICA, standby)):
        settings_dict = {
            **base,
            "NAME": "meterdesk",
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": str(cluster.port),
            "CONN_MAX_AGE": 0,
        }
        wrappers[alias] = load_backend(base["ENGINE"]).DatabaseWrapper(settings_dict, alias)
        # Connected here: Django's test case refuses to open connections for aliases the
        # test did not declare, and "replica" cannot be declared before it exists.
        wrappers[alias].connect()
        setattr(connections._connections, alias, wrappers[alias])
    connections.settings[REPLICA] = wrappers[REPLICA].settings_dict
    try:
        yield primary, standby
    finally:
        for alias, wrapper in wrappers.items():
            wrapper.close()
            if saved[alias] is None:
                delattr(connections._connections, alias)
            else:
                setattr(connections._connections, alias, saved[alias])
        connections.settings.pop(REPLICA, None)


def test_a_dashboard_is_served_from_a_streaming_replica(client, on_the_pair):
    from billing.catalog.spec import load_catalog
    from billing.models import Plan
    from billing.services.accounts import account_create
    from billing.services.catalog import catalog_apply
    from billing.services.subscriptions import subscription_create
    from config.settings.base import BASE_DIR
    from tests.factories import make_user
    from usage.models import Budget

    primary, standby = on_the_pair
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone() == (True,)  # Django's replica alias is the standby
    # On the primary: the catalog, Globex on Starter, two members.
    catalog_apply(catalog=load_catalog(BASE_DIR / "billing" / "catalog" / "demo.toml"))
    account = account_create(name="Globex", billing_email="billing@globex.example")
    subscription_create(account=account, plan=Plan.objects.get(key="starter"))
    ada, bob = make_user(account, "ada"), make_user(account, "bob")
    lag = wait_caught_up(primary, standby)
    print(f"\nreplica caught up {lag * 1000:.1f} ms after the set-up's last commit")

    client.force_login(ada)
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as on_primary,
    ):
        page = client.get(HOME)
    assert page.status_code == 200
    assert "Globex" in page.content.decode()
    replica_sqls = [q["sql"] for q in on_replica.captured_queries]
    primary_sqls = [q["sql"] for q in on_primary.captured_queries]
    # The page's data (tables named quoted by the ORM, unquoted in raw SQL).
    subscriptions = re.compile(r"(?<!\w)djstripe_subscription(?!\w)")
    assert any(subscriptions.search(s) for s in replica_sqls)
    assert any('"usage_usagerollup"' in s for s in replica_sqls)
    assert not any(subscriptions.search(s) for s in primary_sqls)
    assert any('"django_session"' in s for s in primary_sqls)  # sign-in: the primary
    assert [s for s in replica_sqls + primary_sqls if is_write_statement(s)] == []

    # The replica falls behind (replay paused): ada saves a budget and reads it back from
    # the primary; bob, who wrote nothing, reads the replica and does not see it yet.
    sql(standby.dsn(), "SELECT pg_wal_replay_pause()")
    other = client.__class__()
    other.force_login(bob)
    with CaptureQueriesContext(connections[REPLICA]) as during_writes:
        saved = client.post(
            reverse("dashboards:budget_save"),
            {"target": "spend", "limit": "321.09", "warn_levels": "80"},
        )
        assert saved.status_code == 302 and PIN_COOKIE in saved.cookies
        assert "321.09" in client.get(BUDGETS).content.decode()  # ada: the primary
    assert during_writes.captured_queries == []
    assert Budget.objects.get(kind="spend").limit == 32_109  # $321.09 in cents
    assert sql(standby.dsn("meterdesk"), "SELECT count(*) FROM usage_budget")[0] == 0
    with CaptureQueriesContext(connections[REPLICA]) as bobs_reads:
        assert "321.09" not in other.get(BUDGETS).content.decode()  # bob: the replica
    assert any('"usage_budget"' in q["sql"] for q in bobs_reads.captured_queries)

    sql(standby.dsn(), "SELECT pg_wal_replay_resume()")
    lag = wait_caught_up(primary, standby)
    print(f"replica replayed the budget {lag * 1000:.1f} ms after replay resumed")
    assert "321.09" in other.get(BUDGETS).content.decode()  # bob: the replica, caught up
    # The standby refuses writes outright: nothing above could have written there.
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        sql(standby.dsn("meterdesk"), "DELETE FROM usage_budget")
