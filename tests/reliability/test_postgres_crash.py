"""Fault matrix, case (e): PostgreSQL crashes (``pg_ctl stop -m immediate``: every
backend killed, no checkpoint) and restarts with crash recovery while usage is ingested
and reported.

The machine's shared server is never touched: the test database (customers, plans,
meters, the ingest key) is copied into a throwaway cluster on a free port, and a web
server, beat and a worker run on that copy; the ledger is read from it at the end.
"""

import os
import time

import pytest
from django.db import connection, connections
from django.db.utils import load_backend

from tests.reliability.brokers import ThrowawayRedis
from tests.reliability.conftest import SCALE, Matrix
from tests.reliability.postgres import ThrowawayPostgres, unavailable_reason
from tests.reliability.stack import Stack, fast_reporting_env

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

ALIAS = "crash_cluster"


@pytest.fixture
def throwaway_postgres(postgres_database):
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no throwaway PostgreSQL cluster: {reason}")
    cluster = ThrowawayPostgres()
    cluster.init()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def crash_copy(throwaway_postgres, metered_customers):
    """The test database copied into the cluster, and a connection to it under the
    ``crash_cluster`` alias (made by hand, so not one of the test's databases: the
    suite neither wraps nor flushes it). Yields the copy's URL for the processes."""
    throwaway_postgres.copy_database(
        os.environ["DATABASE_URL"], connection.settings_dict["NAME"], "meterdesk"
    )
    settings_dict = {
        **connection.settings_dict,
        "NAME": "meterdesk",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": str(throwaway_postgres.port),
        "CONN_MAX_AGE": 0,
    }
    wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, ALIAS)
    setattr(connections._connections, ALIAS, wrapper)
    yield throwaway_postgres.dsn("meterdesk")
    wrapper.close()
    delattr(connections._connections, ALIAS)


def test_e_postgres_crash_and_restart(
    throwaway_postgres, crash_copy, metered_customers, stripe_client, stripe_emulator,
    emulator_faults, tmp_path,
):  # fmt: skip
    from usage.services.keys import ingest_key_create

    redis_server = ThrowawayRedis(tmp_path)
    redis_server.start()
    stack = Stack(
        fast_reporting_env(
            database_url=crash_copy, redis_url=redis_server.url, emulator_url=stripe_emulator
        ),
        tmp_path,
    )
    try:
        stack.beat()
        stack.worker()
        web = stack.web()
        # The key is made here and copied over by hand: the copy was taken before it.
        key_row, key = ingest_key_create(name="reliability-crash")
        key_row.pk = None
        key_row.save(using=ALIAS)
        m = Matrix(
            case="e_postgres_crash",
            title="PostgreSQL crash-restart",
            faults=f"{SCALE.repeats} immediate shutdown(s) of PostgreSQL, restarted "
            f"{SCALE.outage:g} s later (crash recovery)",
            stack=stack,
            customers=metered_customers,
            url=web,
            key=key,
            client=stripe_client,
            using=ALIAS,
        )
        emulator_faults(latency_ms=5)
        m.start()
        for k in range(SCALE.repeats):
            m.traffic.wait_batches((k + 1) * m.traffic.batches // (SCALE.repeats + 1))
            throwaway_postgres.crash()
            time.sleep(SCALE.outage)
            throwaway_postgres.start()
        r = m.finish(emulator_faults)
        assert r.api_5xx >= 1, "the crash was felt by ingestion (answers retried)"
    finally:
        stack.stop()
        redis_server.kill()
