"""Dashboards on a replica (config/db_router.py, config/replica_middleware.py), with the
test database itself as the replica, opened read-only: SQLite with ``mode=ro``,
PostgreSQL with ``default_transaction_read_only=on``. Any write routed to the replica
would fail there, and every statement it ran is captured and checked to be a read.

The real streaming replica is tests/config/test_replica_streaming.py.
"""

import json
import os
import re
import subprocess
import sys
import time

import pytest
import time_machine
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Account, Membership, Plan
from config.db_router import REPLICA, ReplicaRouter, replica_reads
from config.replica_middleware import PIN_COOKIE, ReplicaReadsMiddleware, is_write_statement
from tests.conftest import ROOT
from tests.factories import make_user
from usage.models import Budget, UsageRollup

HOME = reverse("dashboards:home")
BUDGETS = reverse("dashboards:budgets")


def read_only_replica_settings() -> dict:
    """The test database, opened so that it refuses every write."""
    primary = connection.settings_dict
    if connection.vendor == "sqlite":
        return {**primary, "NAME": f"file:{primary['NAME']}?mode=ro", "OPTIONS": {"timeout": 20}}
    options = dict(primary.get("OPTIONS", {}))
    options["options"] = "-c default_transaction_read_only=on"
    return {**primary, "OPTIONS": options, "CONN_MAX_AGE": 0}


def add_replica_alias(settings_dict: dict) -> None:
    connections.settings[REPLICA] = settings_dict


def remove_replica_alias() -> None:
    if hasattr(connections._connections, REPLICA):
        connections[REPLICA].close()
        delattr(connections._connections, REPLICA)
    connections.settings.pop(REPLICA, None)


@pytest.fixture
def replica(transactional_db):
    """A ``replica`` alias on the committed test database, read-only (added after the
    test case's set-up, so Django's test case neither blocks nor flushes it)."""
    add_replica_alias(read_only_replica_settings())
    replica = connections[REPLICA]
    # Connected here: Django's test case refuses to open a connection for an alias its
    # test did not declare, and the alias cannot be declared before the test case exists.
    replica.connect()
    yield replica
    remove_replica_alias()


@pytest.fixture
def replica_alias_only():
    """The alias without any database work (for routing decisions alone)."""
    add_replica_alias({**connection.settings_dict})
    yield
    remove_replica_alias()


def statements(captured) -> list[str]:
    return [query["sql"] for query in captured.captured_queries]


def assert_reads_only(sqls: list[str]) -> None:
    writes = [sql for sql in sqls if is_write_statement(sql)]
    assert writes == [], writes


def tables_read(sqls: list[str], *tables: str) -> set[str]:
    """Which of ``tables`` the statements name, quoted (the ORM) or not (raw SQL)."""
    return {table for table in tables for sql in sqls if re.search(rf"(?<!\w){table}(?!\w)", sql)}


@pytest.fixture
def owner(other_account):
    """Globex (on Starter) and its owner, ada."""
    return make_user(other_account, "ada")


# --- routing decisions ----------------------------------------------------------------


@pytest.mark.django_db
def test_reads_go_to_the_replica_only_inside_a_replica_block(replica_alias_only):
    assert Plan.objects.all().db == DEFAULT_DB_ALIAS  # a task, a shell, the API
    with replica_reads() as state:
        assert Plan.objects.all().db == REPLICA
        assert UsageRollup.objects.all().db == REPLICA
        # Who is signed in and what they may see: always the primary.
        for model in (Account, Membership):
            assert model.objects.all().db == DEFAULT_DB_ALIAS
        from django.contrib.auth import get_user_model
        from django.contrib.sessions.models import Session

        assert get_user_model().objects.all().db == DEFAULT_DB_ALIAS
        assert Session.objects.all().db == DEFAULT_DB_ALIAS
        # Writes, and reads made for a write (get_or_create, select_for_update): primary.
        assert Plan.objects.select_for_update().db == DEFAULT_DB_ALIAS
        with transaction.atomic():
            assert Plan.objects.all().db == DEFAULT_DB_ALIAS  # read-after-write in a transaction
        assert Plan.objects.all().db == REPLICA
        state.pinned = True
        assert Plan.objects.all().db == DEFAULT_DB_ALIAS
    assert Plan.objects.all().db == DEFAULT_DB_ALIAS


@pytest.mark.django_db
def test_a_task_run_eagerly_inside_a_page_reads_the_primary(replica_alias_only):
    from config.celery import app

    @app.task(name="tests.replica_probe")
    def replica_probe() -> str:
        return Plan.objects.all().db

    with replica_reads():
        assert replica_probe.apply().get() == DEFAULT_DB_ALIAS
        assert Plan.objects.all().db == REPLICA


def test_writes_never_route_to_the_replica_and_it_is_never_migrated(replica_alias_only):
    router = ReplicaRouter()
    plan = Plan(key="x")
    plan._state.db = REPLICA  # as if read from the replica
    with replica_reads():
        assert router.db_for_write(Plan) is None  # Django's default: "default"
        assert router.db_for_write(Plan, instance=plan) == DEFAULT_DB_ALIAS
    assert router.db_for_read(Plan, instance=plan) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(REPLICA, "usage") is False
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "usage") is None
    other = Plan(key="y")
    other._state.db = DEFAULT_DB_ALIAS
    assert router.allow_relation(plan, other) is True


def test_without_a_replica_the_router_changes_nothing():
    assert REPLICA not in connections.settings
    router = ReplicaRouter()
    with replica_reads():
        assert router.db_for_read(Plan) is None
        assert router.db_for_write(Plan) is None


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ('SELECT "billing_plan"."id" FROM "billing_plan"', False),
        ("  (SELECT 1) UNION (SELECT 2)", False),
        ('SELECT "id" FROM "usage_budget" WHERE "id" = 1 FOR UPDATE', True),
        ('INSERT INTO "usage_budget" ("id") VALUES (1)', True),
        ('UPDATE "auth_user" SET "last_login" = now()', True),
        ('DELETE FROM "django_session"', True),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", True),
        ('SAVEPOINT "s1"', False),
    ],
)
def test_write_statements_are_told_apart(sql, writes):
    assert is_write_statement(sql) is writes


# --- requests against a read-only replica ---------------------------------------------
# Two tests, each covering several requests: a replica that sees the test's rows needs a
# transactional test, and each of those flushes the database afterwards.


def test_customer_pages_read_the_replica_and_nothing_else_does(
    client, replica, owner, other_account
):
    # The harness: a write that reached the replica would fail, not pass unseen.
    with pytest.raises(DatabaseError), replica.cursor() as cursor:
        cursor.execute("UPDATE billing_plan SET key = key")

    client.force_login(owner)
    with (
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(connection) as on_primary,
    ):
        response = client.get(HOME)
    assert response.status_code == 200
    assert "Globex" in response.content.decode()
    replica_sqls, primary_sqls = statements(on_replica), statements(on_primary)
    assert_reads_only(replica_sqls)
    assert_reads_only(primary_sqls)  # a dashboard GET writes nothing anywhere
    # The page's data (the subscription mirror, the rollups) came from the replica...
    assert tables_read(replica_sqls, "djstripe_subscription", "usage_usagerollup") == {
        "djstripe_subscription",
        "usage_usagerollup",
    }
    # ...the session, the user and the membership from the primary, and never the replica.
    sign_in = ("django_session", "auth_user", "billing_membership")
    assert tables_read(primary_sqls, *sign_in) == set(sign_in)
    assert tables_read(replica_sqls, *sign_in) == set()
    assert PIN_COOKIE not in response.cookies  # nothing was written

    # The embed widget: its data from the replica; the key (revocable) and the account
    # on the primary.
    from dashboards.embed_tokens import embed_token_create
    from usage.services.keys import ingest_key_create

    key, _ = ingest_key_create(name="widget")
    token = embed_token_create(account=other_account, key=key).token
    with (
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(connection) as on_primary,
    ):
        widget = client.get(reverse("embed_usage"), {"token": token})
    assert widget.status_code == 200
    replica_sqls, primary_sqls = statements(on_replica), statements(on_primary)
    assert_reads_only(replica_sqls)
    assert_reads_only(primary_sqls)
    assert tables_read(replica_sqls, "djstripe_subscription") == {"djstripe_subscription"}
    assert tables_read(primary_sqls, "usage_ingestkey", "billing_account") == {
        "usage_ingestkey",
        "billing_account",
    }
    assert tables_read(replica_sqls, "usage_ingestkey") == set()

    # The admin and the API never read the replica.
    owner.is_staff = owner.is_superuser = True
    owner.save()
    client.force_login(owner)
    with CaptureQueriesContext(replica) as on_replica:
        assert client.get(reverse("admin:index")).status_code == 200
        assert client.get("/api/v1/customers/").status_code in (401, 403, 404)
    assert statements(on_replica) == []


def test_writes_and_the_reads_after_them_stay_on_the_primary(client, replica, owner, settings):
    settings.DATABASE_REPLICA_PIN_SECONDS = 5
    start = time.time()
    with time_machine.travel(start, tick=False):
        # Sign-in writes (last_login, the session): the primary, and a pin.
        with CaptureQueriesContext(replica) as during_login:
            login = client.post(reverse("login"), {"username": "ada", "password": "pw-ada-123"})
            assert login.status_code == 302
            assert client.get(HOME).status_code == 200  # within the pin window
        assert statements(during_login) == []
        assert login.cookies[PIN_COOKIE]["max-age"] == 5

        with CaptureQueriesContext(replica) as during_post:
            response = client.post(
                reverse("dashboards:budget_save"),
                {"target": "spend", "limit": "321.09", "warn_levels": "80"},
            )
        assert response.status_code == 302, response.content.decode()[:500]
        assert Budget.objects.get(kind="spend").limit == 32_109  # $321.09 in cents
        assert statements(during_post) == []
        assert PIN_COOKIE in response.cookies
        # The redirect's GET, within the pin window: the primary only, and it shows the
        # budget just saved.
        with (
            CaptureQueriesContext(replica) as on_replica,
            CaptureQueriesContext(connection) as on_primary,
        ):
            page = client.get(BUDGETS)
        assert page.status_code == 200
        assert "321.09" in page.content.decode()
        assert statements(on_replica) == []
        assert tables_read(statements(on_primary), "usage_budget") == {"usage_budget"}
    # 5.1 s later the pin has ended: the page reads the replica again.
    with time_machine.travel(start + 5.1, tick=False), CaptureQueriesContext(replica) as later:
        assert "321.09" in client.get(BUDGETS).content.decode()
    assert tables_read(statements(later), "usage_budget") == {"usage_budget"}
    assert_reads_only(statements(later))


@pytest.fixture
def replica_without_rows(db):
    """A read-only replica alias in a test whose rows it cannot see (not committed)."""
    add_replica_alias(read_only_replica_settings())
    replica = connections[REPLICA]
    replica.connect()
    yield replica
    remove_replica_alias()


def test_a_write_inside_a_page_pins_the_rest_of_it_to_the_primary(replica_without_rows):
    seen = []

    def view(request):
        seen.append(Plan.objects.all().db)
        Plan.objects.filter(pk=-1).update(key="none")  # a write on the primary
        seen.append(Plan.objects.all().db)
        from django.http import HttpResponse

        return HttpResponse("ok")

    request = RequestFactory().get(HOME)
    request.COOKIES["sessionid"] = "x"  # a browser
    response = ReplicaReadsMiddleware(view)(request)
    assert seen == [REPLICA, DEFAULT_DB_ALIAS]
    assert PIN_COOKIE in response.cookies  # and the browser's next reads, for a while


def test_a_failed_replica_serves_the_page_from_the_primary(client, replica_without_rows, owner):
    def replica_down(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")  # as psycopg says

    client.force_login(owner)
    with (
        replica_without_rows.execute_wrapper(replica_down),
        CaptureQueriesContext(connection) as on_primary,
    ):
        response = client.get(HOME)
    assert response.status_code == 200
    assert "Globex" in response.content.decode()
    assert tables_read(statements(on_primary), "djstripe_subscription") == {"djstripe_subscription"}


# --- settings -------------------------------------------------------------------------

SHOW_DATABASES = (  # the settings module alone: reading settings does no work
    "import importlib, json, sys; "
    "print(json.dumps(importlib.import_module(sys.argv[1]).DATABASES, default=str))"
)


def databases_with(environment: dict, module: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    env.update(environment)
    out = subprocess.run(
        [sys.executable, "-c", SHOW_DATABASES, module],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_replica_alias_comes_from_database_replica_url():
    primary = "postgres://app:pw@db-1:5432/meterdesk"
    replica = "postgres://app:pw@db-2:6432/meterdesk"
    assert list(databases_with({"DATABASE_URL": primary}, "config.settings.base")) == ["default"]
    both = databases_with(
        {"DATABASE_URL": primary, "DATABASE_REPLICA_URL": replica, "DATABASE_CONN_MAX_AGE": "30"},
        "config.settings.base",
    )
    assert (both["replica"]["HOST"], both["replica"]["PORT"]) == ("db-2", 6432)
    for key in ("ENGINE", "NAME", "CONN_MAX_AGE", "ATOMIC_REQUESTS"):
        assert both["replica"][key] == both["default"][key], key
    assert both["replica"]["OPTIONS"] == both["default"].get("OPTIONS", {})
    assert both["replica"]["CONN_MAX_AGE"] == 30
    # In tests the alias mirrors the test database.
    tests = databases_with(
        {"DATABASE_REPLICA_URL": "sqlite:////tmp/r.sqlite3"}, "config.settings.test"
    )
    assert tests["replica"]["TEST"]["MIRROR"] == "default"
    assert tests["replica"]["OPTIONS"] == tests["default"]["OPTIONS"]  # SQLite's, the same
