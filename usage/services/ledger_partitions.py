"""Monthly partitions of the ledger, created ahead of time (PostgreSQL only).

Migration 0016 partitions ``usage_usageevent`` by range of ``timestamp``: one table a
month, ``usage_usageevent_pYYYY_MM``, plus ``usage_usageevent_default`` for anything
outside them. :func:`ensure_partitions` (beat, daily: ``usage.tasks.ensure_ledger_partitions``)
creates the months from the current one to ``months_ahead`` ahead, so events normally
never land in the default partition; rows that did (the task did not run for months)
are moved into their month's new partition.

Each month is one transaction, following PostgreSQL 15's advice for adding a partition
to a table in use (https://www.postgresql.org/docs/15/ddl-partitioning.html, 5.11.2.2,
and https://www.postgresql.org/docs/15/sql-altertable.html, ATTACH PARTITION):

1. ``LOCK TABLE ONLY usage_usageevent IN SHARE UPDATE EXCLUSIVE MODE``: the lock ATTACH
   takes on the parent. Ingestion (ROW EXCLUSIVE) and reads go on; a second run waits.
2. ``LOCK TABLE usage_usageevent_default IN ACCESS EXCLUSIVE MODE``: ATTACH locks the
   default partition so (it must prove no row of it belongs to the new month); taken
   first, so no insert can put such a row there between the move and the attach, and
   no lock is upgraded half way. It blocks what reads or writes the default partition
   (unpruned ledger scans, events outside every month) for the few milliseconds of an
   empty or small default partition.
3. ``CREATE TABLE .. (LIKE usage_usageevent INCLUDING DEFAULTS INCLUDING CONSTRAINTS)``
   with a ``CHECK`` matching the month's bounds (so ATTACH need not scan it), not
   ``CREATE TABLE .. PARTITION OF`` (which takes ACCESS EXCLUSIVE on the parent and
   blocks every ingest and read until the transaction ends).
4. ``WITH moved AS (DELETE FROM usage_usageevent_default WHERE <month> RETURNING ..)
   INSERT INTO <new> SELECT .. FROM moved``.
5. ``ALTER TABLE usage_usageevent ATTACH PARTITION <new> FOR VALUES FROM (..) TO (..)``
   (builds the parent's indexes on it, clones its foreign keys), then the redundant
   ``CHECK`` is dropped.

SQLite keeps one unpartitioned table: nothing to do. The date helpers are copies of the
migration's (a migration stays frozen; nothing imports from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction

TABLE = "usage_usageevent"
DEFAULT_PARTITION = f"{TABLE}_default"


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(moment: datetime) -> datetime:
    return datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)


def previous_month(moment: datetime) -> datetime:
    start = month_start(moment)
    if start.month == 1:
        return datetime(start.year - 1, 12, 1, tzinfo=UTC)
    return datetime(start.year, start.month - 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{TABLE}_p{month.year:04d}_{month.month:02d}"


@dataclass
class PartitionsEnsured:
    created: list[str] = field(default_factory=list)
    moved: dict[str, int] = field(default_factory=dict)  # partition -> rows from default

    def summary(self) -> str:
        if not self.created:
            return "ledger partitions: none missing"
        moved = sum(self.moved.values())
        return f"ledger partitions: created {', '.join(self.created)}; {moved} row(s) moved"


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def attached_partitions() -> dict[str, str]:
    """Name -> bound expression of every partition attached to the ledger."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        return dict(cursor.fetchall())


def ledger_columns() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            [TABLE],
        )
        return [name for (name,) in cursor.fetchall()]


def ensure_partitions(now: datetime | None = None, months_ahead: int = 3) -> PartitionsEnsured:
    """Create every missing monthly partition from ``now``'s month to ``months_ahead``
    months after it, moving that month's rows out of the default partition (see the
    module doc). Idempotent; a no-op on SQLite or an unpartitioned ledger."""
    result = PartitionsEnsured()
    if not is_partitioned():
        return result
    month = month_start(now or datetime.now(UTC))
    for _ in range(months_ahead + 1):
        if partition_name(month) not in attached_partitions():
            result.moved[partition_name(month)] = _add_month(month)
            result.created.append(partition_name(month))
        month = next_month(month)
    return result


def _add_month(month: datetime) -> int:
    name, end = partition_name(month), next_month(month)
    columns = ", ".join(connection.ops.quote_name(c) for c in ledger_columns())
    bound_check = f"{name}_bounds"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE ONLY {TABLE} IN SHARE UPDATE EXCLUSIVE MODE")
        if name in attached_partitions():  # another run attached it while we waited
            return 0
        cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
        cursor.execute("SELECT 1 FROM pg_class WHERE oid = to_regclass(%s)", [name])
        if cursor.fetchone():
            raise RuntimeError(
                f"{name} exists but is not a partition of {TABLE} (an archived month kept "
                "after DETACH?): rename or drop it"
            )
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
            f'CONSTRAINT {bound_check} CHECK ("timestamp" IS NOT NULL '
            'AND "timestamp" >= %s AND "timestamp" < %s))',
            [month, end],
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
            f'WHERE "timestamp" >= %s AND "timestamp" < %s RETURNING {columns}) '
            f"INSERT INTO {name} ({columns}) SELECT {columns} FROM moved",
            [month, end],
        )
        moved = cursor.rowcount
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
            [month, end],
        )
        cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {bound_check}")
    return moved
