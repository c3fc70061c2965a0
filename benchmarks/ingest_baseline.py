"""The ingest benchmark's database side: the same-run ``COPY`` baselines (all indexes,
without the redundant ones, primary key and identifier only), the rows they copy, the
redundant-index what-if, and settling the tables between timed segments."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

from benchmarks import common
from benchmarks.common import Timer, check, log

# Indexes of usage_usageevent that no query needs (see README "Performance"): Django's
# ``varchar_pattern_ops`` twin of the unique identifier index (LIKE 'prefix%' only), and
# the single-column foreign key indexes on account_id and meter_id, which the composite
# (account_id, meter_id, ...) indexes already cover as their prefix (meter_id is only
# looked up alone when a meter is deleted, which PROTECT forbids once it has events).
REDUNDANT = (
    r"USING btree \(identifier varchar_pattern_ops\)",
    r"USING btree \(account_id\)$",
    r"USING btree \(meter_id\)$",
)


def _copy_text(rows: list[tuple], received_at: datetime) -> bytes:
    buf = io.StringIO()
    stamp = received_at.isoformat()
    for identifier, account_id, meter_id, value, ts, payload_hash in rows:
        buf.write(
            f"{identifier}\t{account_id}\t{meter_id}\t{value}\t{ts.isoformat()}\t{stamp}\t"
            f"{payload_hash}\n"
        )
    return buf.getvalue().encode()


def _copy_into(table: str, data: bytes, expected: int) -> float:
    """Seconds to COPY the rows into ``table`` (then dropped)."""
    from django.db import connection

    connection.ensure_connection()
    pg = connection.connection  # psycopg 3
    with Timer() as t:
        with (
            pg.cursor() as cursor,
            cursor.copy(
                f"COPY {table} (identifier, account_id, meter_id, value, timestamp, "
                "received_at, payload_hash) FROM STDIN"
            ) as copy,
        ):
            for start in range(0, len(data), 1 << 20):
                copy.write(data[start : start + (1 << 20)])
        pg.commit()
    count = common.raw_sql(f"SELECT count(*) FROM {table}")[0][0]
    check(count == expected, f"COPY into {table} stored {count} rows, expected {expected}")
    common.raw_sql(f"DROP TABLE {table}", fetch=False)
    return t.seconds


def copy_baselines(rows: list[tuple]) -> dict[str, float]:
    """rows/s of COPY into copies of usage_usageevent: with all its indexes (the
    baseline), without the redundant ones, and with only the primary key and the unique
    identifier index (the issue's reference setup). Each table starts empty."""
    data = _copy_text(rows, datetime.now(UTC))
    rates = {}
    common.raw_sql("DROP TABLE IF EXISTS bench_copy", fetch=False)
    common.raw_sql("CREATE TABLE bench_copy (LIKE usage_usageevent INCLUDING ALL)", fetch=False)
    indexes = common.raw_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", ["bench_copy"]
    )
    log(f"ingest: COPY baseline table has {len(indexes)} indexes")
    rates["all"] = len(rows) / _copy_into("bench_copy", data, len(rows))

    rates["indexes"] = len(indexes)
    if redundant_present():  # before migration usage 0003 dropped them
        common.raw_sql("CREATE TABLE bench_copy (LIKE usage_usageevent INCLUDING ALL)", fetch=False)
        dropped = 0
        for name, definition in common.raw_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'bench_copy'"
        ):
            if any(re.search(p, definition) for p in REDUNDANT):
                common.raw_sql(f'DROP INDEX "{name}"', fetch=False)
                dropped += 1
        check(
            dropped == len(REDUNDANT), f"found {dropped} of the {len(REDUNDANT)} redundant indexes"
        )
        rates["proposed"] = len(rows) / _copy_into("bench_copy", data, len(rows))

    common.raw_sql(
        "CREATE TABLE bench_copy (LIKE usage_usageevent INCLUDING DEFAULTS INCLUDING IDENTITY "
        "INCLUDING CONSTRAINTS)",
        fetch=False,
    )
    common.raw_sql("ALTER TABLE bench_copy ADD PRIMARY KEY (id)", fetch=False)
    common.raw_sql("CREATE UNIQUE INDEX ON bench_copy (identifier)", fetch=False)
    rates["minimal"] = len(rows) / _copy_into("bench_copy", data, len(rows))
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


def redundant_present() -> bool:
    """Whether the ledger still has the indexes migration usage 0003 dropped."""
    return any(
        re.search(p, definition)
        for (definition,) in common.raw_sql(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'usage_usageevent'"
        )
        for p in REDUNDANT
    )


def drop_redundant_indexes() -> list[str]:
    """Drop them from usage_usageevent (this throwaway database only); returns their
    definitions so they can be put back."""
    definitions = []
    for name, definition in common.raw_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'usage_usageevent'"
    ):
        if any(re.search(p, definition) for p in REDUNDANT):
            common.raw_sql(f'DROP INDEX "{name}"', fetch=False)
            definitions.append(definition)
    check(len(definitions) == len(REDUNDANT), f"redundant indexes found: {definitions}")
    return definitions
