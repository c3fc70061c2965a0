"""The ingest benchmark's database side: the same-run ``COPY`` baselines (into copies of
the partitioned ledger and the identifier table: with all the ledger's indexes, and
with only its primary key), the rows they copy, and settling the tables between timed
segments."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from benchmarks import common
from benchmarks.common import Timer, check, log


def _copy_text(rows: list[tuple], received_at: datetime) -> tuple[bytes, bytes]:
    """The COPY text of the events and of their identifiers (event ids 1..n)."""
    events, identifiers = io.StringIO(), io.StringIO()
    stamp = received_at.isoformat()
    for n, (identifier, account_id, meter_id, value, ts, payload_hash) in enumerate(rows, 1):
        at = ts.isoformat()
        events.write(
            f"{identifier}\t{account_id}\t{meter_id}\t{value}\t{at}\t{stamp}\t{payload_hash}\n"
        )
        identifiers.write(f"{identifier}\t{n}\t{at}\t{payload_hash}\n")
    return events.getvalue().encode(), identifiers.getvalue().encode()


EVENT_COLUMNS = "identifier, account_id, meter_id, value, timestamp, received_at, payload_hash"
IDENTIFIER_COLUMNS = "identifier, event_id, timestamp, payload_hash"


def _copy(table: str, columns: str, data: bytes) -> float:
    """Seconds to COPY ``data`` into ``table`` and commit."""
    from django.db import connection

    connection.ensure_connection()
    pg = connection.connection  # psycopg 3
    with Timer() as t:
        with pg.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for start in range(0, len(data), 1 << 20):
                copy.write(data[start : start + (1 << 20)])
        pg.commit()
    return t.seconds


def _count(table: str) -> int:
    return common.raw_sql(f"SELECT count(*) FROM {table}")[0][0]


def _ledger_copy(name: str, *, indexes: bool) -> None:
    """``name``: a copy of the ledger, partitioned like it (the same partitions and
    default partition), with its indexes (or only the primary key), ids from the
    ledger's sequence (as ingestion draws them); and ``name``_ident, a copy of the
    identifier table with its primary key. No foreign keys (LIKE copies none): the
    baseline never paid for them, and since migration 0019 the ledger has none on
    account and meter either (its one left, to the report, is NULL on every insert)."""
    common.raw_sql(f"DROP TABLE IF EXISTS {name}, {name}_ident", fetch=False)
    partitioned = common.raw_sql(
        "SELECT relkind = 'p' FROM pg_class WHERE relname = 'usage_usageevent'"
    )[0][0]
    include = "INCLUDING ALL" if indexes else "INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
    suffix = ' PARTITION BY RANGE ("timestamp")' if partitioned else ""
    common.raw_sql(f"CREATE TABLE {name} (LIKE usage_usageevent {include}){suffix}", fetch=False)
    if not indexes:
        key = '(id, "timestamp")' if partitioned else "(id)"
        common.raw_sql(f"ALTER TABLE {name} ADD PRIMARY KEY {key}", fetch=False)
    if partitioned:
        for part, bound in common.raw_sql(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'usage_usageevent'::regclass"
        ):
            tail = part.removeprefix("usage_usageevent")
            common.raw_sql(f"CREATE TABLE {name}{tail} PARTITION OF {name} {bound}", fetch=False)
    common.raw_sql(
        f"CREATE TABLE {name}_ident (LIKE usage_eventidentifier INCLUDING ALL)", fetch=False
    )


def _copy_both(name: str, data: tuple[bytes, bytes], expected: int) -> tuple[float, float]:
    """COPY the events and the identifiers into ``name`` and ``name``_ident (then
    dropped): the seconds of each."""
    events = _copy(name, EVENT_COLUMNS, data[0])
    identifiers = _copy(f"{name}_ident", IDENTIFIER_COLUMNS, data[1])
    for table in (name, f"{name}_ident"):
        count = _count(table)
        check(count == expected, f"COPY into {table} stored {count} rows, expected {expected}")
    common.raw_sql(f"DROP TABLE {name}, {name}_ident", fetch=False)
    return events, identifiers


def copy_baselines(rows: list[tuple]) -> dict[str, float]:
    """rows/s of COPY of the same rows into what one ingest writes: a copy of the
    partitioned ledger with all its indexes plus a copy of the identifier table (the
    baseline, "all": the rows over the two COPYs' seconds together), and the same with
    only the ledger's primary key ("minimal"). Each table starts empty. The rollups,
    which ingestion also writes (one row per account, meter and hour), are not in it."""
    data = _copy_text(rows, datetime.now(UTC))
    n = len(rows)
    rates: dict = {}
    _ledger_copy("bench_copy", indexes=True)
    indexes = common.raw_sql(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'bench_copy'::regclass"
    )[0][0]
    log(f"ingest: COPY baseline ledger copy has {indexes} indexes (+ the identifier key)")
    events, identifiers = _copy_both("bench_copy", data, n)
    rates["all"] = n / (events + identifiers)
    rates["events_only"] = n / events
    rates["identifiers_only"] = n / identifiers
    rates["indexes"] = indexes
    _ledger_copy("bench_copy", indexes=False)
    events, identifiers = _copy_both("bench_copy", data, n)
    rates["minimal"] = n / (events + identifiers)
    return rates


def copy_rows(events: list[dict], account_of: dict, meter_of: dict) -> list[tuple]:
    from usage.event_validation import payload_hash

    rows = []
    for e in events:
        ts = datetime.fromtimestamp(e["timestamp"], UTC)
        h = payload_hash(
            event_name=e["event_name"], customer=e["customer"], value=e["value"], timestamp=ts
        )
        rows.append(
            (
                e["identifier"],
                account_of[e["customer"]],
                meter_of[e["event_name"]],
                e["value"],
                ts,
                h,
            )
        )
    return rows


def settle() -> None:
    """Start each timed segment from the same state: no autovacuum or checkpoint debt
    left over from the one before."""
    common.raw_sql("VACUUM (ANALYZE) usage_usageevent", fetch=False)
    common.raw_sql("VACUUM (ANALYZE) usage_usagerollup", fetch=False)
    if common.raw_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0]:
        common.raw_sql("CHECKPOINT", fetch=False)


def stored(prefix: str) -> int:
    return common.raw_sql(
        "SELECT count(*) FROM usage_usageevent WHERE starts_with(identifier, %s)", [prefix + "_"]
    )[0][0]
