"""A big ledger for the ingest-at-scale stage, loaded as a bulk load would and kept.

``ensure(rows)`` makes (or reuses) a persistent database ``bench_ingest_<label>``
(``bench_ingest_100m``, ``bench_ingest_1m``, ...) holding ``rows`` ledger events
of one account's ``api_calls`` meter spread evenly over ``DAYS`` days up to two hours
before the load (the shape of one big customer's current period: the ingest-at-scale
stage writes on top of it, :mod:`benchmarks.bench_chart_scale` serves its chart), with
their identifiers and hourly rollups, in the run's schema. It is reused when its marker
table says it was loaded completely with this many rows, the run's migrations applied to
it leave the ledger's tables identical to the run database's (columns, indexes and
constraints compared), and the ledger holds exactly that many rows; the events other
runs ingested on top are deleted first. Otherwise it is dropped and loaded again.

How it is loaded (the usual bulk-load recipe for a partitioned table):

- the database is a copy of the run database (``CREATE DATABASE ... TEMPLATE``: the
  catalog's meters), its usage tables emptied; ``ACCOUNTS`` accounts are added;
- per calendar month: a plain table ``LIKE usage_usageevent`` without indexes is filled
  by ``COPY ... FROM STDIN`` (text made here: identifiers are 32 random hex digits, the
  shape of a client's UUIDs, so later identifiers land all over the identifier index),
  their identifiers and rollups are added with ``INSERT ... SELECT``, then the month's
  indexes (the partitioned table's own definitions) are built, a ``CHECK`` on the
  month's range spares ``ATTACH`` its scan, and the table is attached as the month's
  partition (replacing the empty one the migration made);
- ``usage_eventidentifier`` has its primary key dropped for the load and built after it
  (one sort instead of 100 M random B-tree inserts);
- ``VACUUM ANALYZE`` at the end, so no autovacuum debt is left for the measurement.

Loaded events have no report (``report_id`` NULL): nothing reports in this database.

    python -m benchmarks.ledger_load --ledger-rows 100000000   # build or check, then exit
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta

from benchmarks.common import Timer, check, log

DAYS = 20
ACCOUNTS = 1
METER = "api_calls"
MARKER = "bench_ledger_marker"
COPY_CHUNK = 100_000
# The load stops with an error rather than fill the disk: about 520 bytes a row
# (events ~190 + their 4 indexes ~150 + identifiers ~140 + its key ~60) must fit with
# this much to spare.
BYTES_PER_ROW = 520
SPARE_BYTES = 15 * 2**30
LEDGER_TABLES = ("usage_usageevent", "usage_eventidentifier", "usage_usagerollup")
# The chart stage puts the big account on a period starting at the load's first event;
# a monthly period must still hold the load's last one and today.
MAX_AGE_DAYS = 27


def label(rows: int) -> str:
    for size, suffix in ((10**9, "b"), (10**6, "m"), (10**3, "k")):
        if rows >= size and rows % size == 0:
            return f"{rows // size}{suffix}"
    return str(rows)


def database_name(rows: int, prefix: str = "bench_ingest") -> str:
    return f"{prefix}_{label(rows)}"


def url_for(database_url: str, name: str) -> str:
    from benchmarks.environment import _with_db

    return _with_db(database_url, name)


@contextlib.contextmanager
def using_database(name: str):
    """Django's default connection on database ``name`` inside the block."""
    from django.db import connections

    conn = connections["default"]
    conn.close()
    previous = conn.settings_dict["NAME"]
    conn.settings_dict["NAME"] = name
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict["NAME"] = previous


def _connect(database_url: str, name: str, **kwargs):
    import psycopg

    from benchmarks.environment import _with_db

    return psycopg.connect(_with_db(database_url, name), autocommit=True, **kwargs)


def schema_fingerprint(conn) -> str:
    """The ledger's tables (not its partitions): columns, indexes and constraints. The
    rest of the schema follows the run's migrations (``migrate_to_run``)."""
    rows = conn.execute(
        """
        SELECT 'c', c.relname, a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND a.attnum > 0 AND NOT a.attisdropped AND c.relname = ANY(%(tables)s)
        UNION ALL
        SELECT 'i', tablename, regexp_replace(indexdef, '^.* USING ', '')
        FROM pg_indexes i JOIN pg_class c ON c.relname = i.tablename
        WHERE i.schemaname = 'public' AND NOT c.relispartition
          AND c.relname = ANY(%(tables)s)
        UNION ALL
        SELECT 'k', c.relname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT c.relispartition AND c.relname = ANY(%(tables)s)
        ORDER BY 1, 2, 3
        """,
        {"tables": list(LEDGER_TABLES)},
    ).fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:24]


def _exists(database_url: str, name: str) -> bool:
    with _connect(database_url, "postgres") as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone())


def _sessions(database_url: str, name: str) -> list[int]:
    with _connect(database_url, "postgres") as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", [name]
            ).fetchall()
        ]


def status(database_url: str, name: str, rows: int, fingerprint: str) -> str | None:
    """None when ``name`` holds a complete load of ``rows`` whose ledger tables match
    ``fingerprint`` and whose period still fits one billing month, else why not."""
    if not _exists(database_url, name):
        return "absent"
    with _connect(database_url, name) as conn:
        if not conn.execute("SELECT to_regclass(%s)", [MARKER]).fetchone()[0]:
            return "no marker (an interrupted load)"
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                [MARKER],
            ).fetchall()
        }
        if "period_start" not in columns:
            return "loaded in an older shape (not one account's period)"
        marker = conn.execute(
            f"SELECT rows, now() - period_start < interval '{MAX_AGE_DAYS} days' FROM {MARKER}"
        ).fetchone()
        if marker is None or marker[0] != rows:
            return f"marker says {marker}, not {rows} rows"
        if not marker[1]:
            return f"its period started over {MAX_AGE_DAYS} days ago (no longer one billing month)"
        if schema_fingerprint(conn) != fingerprint:
            return "the ledger's tables differ from the run's after migrating"
    return None


def migrate_to_run(name: str) -> None:
    """Apply the run's migrations to a loaded database (the ledger tables are then
    compared; other tables just follow the code)."""
    from django.core.management import call_command

    with using_database(name):
        call_command("migrate", verbosity=0, interactive=False)


def loaded_period(database_url: str, name: str) -> tuple[datetime, datetime]:
    """The loaded events' [start, end): the big account's period starts at ``start``."""
    with _connect(database_url, name) as conn:
        return conn.execute(f"SELECT period_start, period_end FROM {MARKER}").fetchone()


def bulk_account_ids(conn) -> list[int]:
    return [r[0] for r in conn.execute(f"SELECT unnest(account_ids) FROM {MARKER}").fetchall()]


def bulk_account_ids_in(name: str, database_url: str) -> list[int]:
    """The loaded accounts of database ``name``."""
    with _connect(database_url, name) as conn:
        return bulk_account_ids(conn)


def reset_to_loaded(database_url: str, name: str, rows: int) -> float:
    """Delete what earlier runs ingested on top (accounts not in the load), vacuum, and
    check the ledger holds exactly the loaded rows; returns the seconds it took."""
    with Timer() as t, _connect(database_url, name) as conn:
        ids = bulk_account_ids(conn)
        conn.execute("SET maintenance_work_mem = '512MB'")
        # Events by id (each partition's primary key), their identifiers by key, rollups
        # by account (a small table).
        conn.execute(
            "WITH gone AS (DELETE FROM usage_usageevent WHERE id > "
            f"(SELECT loaded_max_id FROM {MARKER}) RETURNING identifier) "
            "DELETE FROM usage_eventidentifier WHERE identifier IN (SELECT identifier FROM gone)"
        )
        conn.execute("DELETE FROM usage_usagerollup WHERE NOT (account_id = ANY(%s))", [ids])
        # The loaded accounts' hours after the load (the chart stage's current hours).
        conn.execute(
            "DELETE FROM usage_usagerollup WHERE account_id = ANY(%s) AND hour > "
            f"(SELECT date_trunc('hour', period_end) FROM {MARKER})",
            [ids],
        )
        conn.execute("VACUUM (ANALYZE) usage_usageevent")
        conn.execute("VACUUM (ANALYZE) usage_eventidentifier")
        conn.execute("VACUUM (ANALYZE) usage_usagerollup")
        (count,) = conn.execute("SELECT count(*) FROM usage_usageevent").fetchone()
        (idents,) = conn.execute("SELECT count(*) FROM usage_eventidentifier").fetchone()
    check(count == rows, f"{name}: the ledger holds {count:,} rows, the marker says {rows:,}")
    check(idents == rows, f"{name}: {idents:,} identifiers for {rows:,} loaded rows")
    return t.seconds


# -- the load ---------------------------------------------------------------------------
def _month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(moment: datetime) -> datetime:
    return datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)


def months(start: datetime, end: datetime, rows: int) -> list[tuple[datetime, datetime, int]]:
    """(month start, month end, rows in it) spreading ``rows`` evenly over [start, end)."""
    out, month, total = [], _month_start(start), (end - start).total_seconds()
    given = 0
    while month < end:
        hi = min(_next_month(month), end)
        # Rows whose even position falls before ``hi``: cumulative, so they sum to rows.
        upto = rows - round(rows * (end - hi).total_seconds() / total)
        out.append((month, _next_month(month), upto - given))
        given = upto
        month = _next_month(month)
    return out


def _copy_month(cursor, table, *, first_id, n, lo, hi, accounts, meters, received) -> None:
    """COPY n events into ``table``: ids first_id.., times evenly over [lo, hi)."""
    t_lo, span = int(lo.timestamp()), int((hi - lo).total_seconds())
    n_accounts, n_meters = len(accounts), len(meters)
    payload = "0" * 64
    last_second, stamp = None, ""
    with cursor.copy(
        f"COPY {table} (id, identifier, account_id, meter_id, value, timestamp, "
        "received_at, payload_hash) FROM STDIN"
    ) as copy:
        for start in range(0, n, COPY_CHUNK):
            stop = min(n, start + COPY_CHUNK)
            hexes = os.urandom(16 * (stop - start)).hex()
            lines = []
            append = lines.append
            for i in range(start, stop):
                second = t_lo + span * i // n
                if second != last_second:
                    last_second = second
                    stamp = datetime.fromtimestamp(second, UTC).isoformat()
                event_id = first_id + i
                j = 32 * (i - start)
                append(
                    f"{event_id}\t{hexes[j : j + 32]}\t{accounts[i % n_accounts]}\t"
                    f"{meters[(i // n_accounts) % n_meters]}\t1\t{stamp}\t"
                    f"{received}\t{payload}\n"
                )
            copy.write("".join(lines))


def _partition_bounds(conn) -> dict[str, str]:
    """Partition name -> its bound expression."""
    return dict(
        conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'usage_usageevent'::regclass"
        ).fetchall()
    )


def _index_definitions(conn) -> list[str]:
    """The partitioned ledger's non-primary-key index definitions, for another table."""
    rows = conn.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = 'usage_usageevent'::regclass AND NOT i.indisprimary"
    ).fetchall()
    return [r[0] for r in rows]


def build(database_url: str, name: str, rows: int, fingerprint: str, *, days: int = DAYS) -> dict:
    """Drop ``name`` and load it again (see the module's docstring); returns timings."""
    from benchmarks.environment import _with_db, db_name, recreate_database

    need = rows * BYTES_PER_ROW + SPARE_BYTES
    free = shutil.disk_usage("/").free
    check(
        free > need,
        f"loading {rows:,} rows needs ~{need / 2**30:.0f} GiB free, {free / 2**30:.0f} GiB are",
    )
    recreate_database(_with_db(database_url, name), drop_only=True)
    source = db_name(database_url)
    with _connect(database_url, "postgres") as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    timings: dict[str, float] = {}
    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    end = now - timedelta(hours=2)
    start = end - timedelta(days=days)
    with _connect(database_url, name) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(
            "TRUNCATE usage_usageevent, usage_eventidentifier, usage_usagerollup, "
            "usage_usagereport CASCADE"
        )
        now_sql = "now()"
        ids = [
            r[0]
            for r in conn.execute(
                "INSERT INTO billing_account (name, billing_email, status, currency, "
                f"slack_webhook_url, created_at) SELECT 'Ledger bulk ' || g, "
                f"'ledgerbulk' || g || '@bench.test', 'active', 'usd', '', {now_sql} "
                f"FROM generate_series(1, {ACCOUNTS}) g RETURNING id"
            ).fetchall()
        ]
        meters = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM billing_meter WHERE event_name = %s",
                [METER],
            ).fetchall()
        ]
        check(meters, f"no meter {METER!r} in the catalog")
        conn.execute("ALTER TABLE usage_eventidentifier DROP CONSTRAINT usage_eventidentifier_pkey")
        indexes = _index_definitions(conn)
        bounds = _partition_bounds(conn)
        (first_id,) = conn.execute("SELECT nextval('usage_usageevent_id_seq')").fetchone()
        received = now.isoformat()
        plan = months(start, end, rows)
        for month, month_end, n in plan:
            if n <= 0:
                continue
            part = f"usage_usageevent_p{month.year:04d}_{month.month:02d}"
            stage = f"{part}_load"
            lo, hi = max(month, start), min(month_end, end)
            log(f"ledger load {name}: {part}: {n:,} rows ({lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d})")
            with Timer() as t:
                conn.execute(
                    f"CREATE TABLE {stage} (LIKE usage_usageevent INCLUDING DEFAULTS "
                    "INCLUDING CONSTRAINTS)"
                )
                with conn.cursor() as cursor:
                    _copy_month(
                        cursor,
                        stage,
                        first_id=first_id,
                        n=n,
                        lo=lo,
                        hi=hi,
                        accounts=ids,
                        meters=meters,
                        received=received,
                    )
            timings[f"{part}_copy"] = t.seconds
            log(f"  COPY {t.seconds:.0f}s ({n / t.seconds:,.0f} rows/s)")
            with Timer() as t:
                conn.execute(
                    "INSERT INTO usage_eventidentifier (identifier, event_id, timestamp, "
                    f"payload_hash) SELECT identifier, id, timestamp, payload_hash FROM {stage}"
                )
            timings[f"{part}_identifiers"] = t.seconds
            with Timer() as t:
                conn.execute(
                    "INSERT INTO usage_usagerollup (account_id, meter_id, hour, sum_value, "
                    "event_count, last_value, last_timestamp, last_event_id) "
                    "SELECT account_id, meter_id, date_trunc('hour', timestamp), sum(value), "
                    "count(*), 1, max(timestamp), max(id) "
                    f"FROM {stage} GROUP BY 1, 2, 3"
                )
            timings[f"{part}_rollups"] = t.seconds
            with Timer() as t:
                conn.execute(f'ALTER TABLE {stage} ADD PRIMARY KEY (id, "timestamp")')
                for definition in indexes:
                    using = definition.index(" USING ")
                    unique = "UNIQUE " if definition.startswith("CREATE UNIQUE") else ""
                    conn.execute(f"CREATE {unique}INDEX ON {stage}{definition[using:]}")
                conn.execute(
                    f"ALTER TABLE {stage} ADD CONSTRAINT {stage}_range CHECK "
                    f'("timestamp" IS NOT NULL AND "timestamp" >= \'{month.isoformat()}\' '
                    f"AND \"timestamp\" < '{month_end.isoformat()}')"
                )
            timings[f"{part}_indexes"] = t.seconds
            log(
                f"  identifiers {timings[part + '_identifiers']:.0f}s, rollups "
                f"{timings[part + '_rollups']:.0f}s, indexes {t.seconds:.0f}s"
            )
            with Timer() as t:
                conn.execute(f"VACUUM (ANALYZE) {stage}")
                if part in bounds:
                    conn.execute(f"ALTER TABLE usage_usageevent DETACH PARTITION {part}")
                    conn.execute(f"DROP TABLE {part}")
                conn.execute(
                    f"ALTER TABLE usage_usageevent ATTACH PARTITION {stage} FOR VALUES "
                    f"FROM ('{month.isoformat()}') TO ('{month_end.isoformat()}')"
                )
                conn.execute(f"ALTER TABLE {stage} DROP CONSTRAINT {stage}_range")
                conn.execute(f"ALTER TABLE {stage} RENAME TO {part}")
            timings[f"{part}_attach"] = t.seconds
            first_id += n
        conn.execute("SELECT setval('usage_usageevent_id_seq', %s)", [first_id - 1])
        with Timer() as t:
            conn.execute("ALTER TABLE usage_eventidentifier ADD PRIMARY KEY (identifier)")
        timings["identifier_key"] = t.seconds
        log(f"ledger load {name}: identifier key built in {t.seconds:.0f}s")
        with Timer() as t:
            conn.execute("VACUUM (ANALYZE) usage_eventidentifier")
            conn.execute("VACUUM (ANALYZE) usage_usagerollup")
            conn.execute("ANALYZE usage_usageevent")
        timings["vacuum"] = t.seconds
        (count,) = conn.execute("SELECT count(*) FROM usage_usageevent").fetchone()
        check(count == rows, f"{name}: loaded {count:,} rows, meant {rows:,}")
        (summed,) = conn.execute("SELECT sum(event_count) FROM usage_usagerollup").fetchone()
        check(summed == rows, f"{name}: rollups count {summed:,}, the ledger {rows:,}")
        seconds = time.perf_counter() - started
        conn.execute(
            f"CREATE TABLE {MARKER} (rows bigint, fingerprint text, account_ids bigint[], "
            "loaded_max_id bigint, loaded_at timestamptz, seconds float, timings jsonb, "
            "method text, period_start timestamptz, period_end timestamptz)"
        )
        import json

        conn.execute(
            f"INSERT INTO {MARKER} VALUES (%s, %s, %s, %s, now(), %s, %s, %s, %s, %s)",
            [
                rows,
                fingerprint,
                ids,
                first_id - 1,
                seconds,
                json.dumps(timings),
                f"COPY per month into unindexed tables, indexes built after, attached; "
                f"{days} days, {ACCOUNTS} account(s), meter {METER}",
                start,
                end,
            ],
        )
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    log(f"ledger load {name}: {rows:,} rows in {seconds:.0f}s, {size / 2**30:.1f} GiB")
    return {"seconds": seconds, "bytes": size, "timings": timings}


def ensure(database_url: str, rows: int, name: str | None = None) -> dict:
    """The database of ``rows`` loaded events: reused if complete, else (re)loaded.
    ``database_url`` is the run database (schema and catalog source)."""
    name = name or database_name(rows)
    with _connect(database_url, db_name_of(database_url)) as conn:
        fingerprint = schema_fingerprint(conn)
    if _exists(database_url, name) and status(database_url, name, rows, "") in (
        None,
        "the ledger's tables differ from the run's after migrating",
    ):
        migrate_to_run(name)
    why = status(database_url, name, rows, fingerprint)
    if why is None:
        log(f"ledger {name}: {rows:,} rows loaded earlier, reused")
        seconds = reset_to_loaded(database_url, name, rows)
        _own_account_ids(database_url, name, rows)
        return {"database": name, "reused": True, "reset_seconds": seconds}
    busy = _sessions(database_url, name)
    check(
        not busy,
        f"ledger {name}: {why}, and {len(busy)} other session(s) use it (a load still running? "
        f"backend pids {busy}): not dropped; run again when it ends, or with --ledger-rows 0",
    )
    log(f"ledger {name}: loading {rows:,} rows ({why})")
    out = build(database_url, name, rows, fingerprint)
    _own_account_ids(database_url, name, rows)
    return {"database": name, "reused": False, **out}


def _own_account_ids(database_url: str, name: str, rows: int) -> None:
    """New accounts of each loaded database get ids of their own range (10^8 x the
    digits of ``rows``): the databases are copies of one template, and one run's emulator
    serves them all, so equal account ids would send Stripe one customer idempotency key
    (``meterdesk-account-<pk>-customer``) with two different requests, which it refuses."""
    base = len(str(rows)) * 10**8
    with _connect(database_url, name) as conn:
        conn.execute(
            "SELECT setval('billing_account_id_seq', GREATEST(%s, "
            "(SELECT last_value FROM billing_account_id_seq)))",
            [base],
        )


def db_name_of(url: str) -> str:
    from benchmarks.environment import db_name

    return db_name(url)


def main(argv=None) -> int:
    from benchmarks import environment

    parser = argparse.ArgumentParser(prog="python -m benchmarks.ledger_load", description=__doc__)
    environment.common_arguments(parser)
    parser.add_argument("--ledger-rows", type=int, default=100_000_000)
    args = parser.parse_args(argv)
    with environment.environment(args):
        from django.db import connections

        connections.close_all()
        print(ensure(args.database_url, args.ledger_rows))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
