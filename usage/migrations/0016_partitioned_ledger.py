"""The ledger partitioned by month on PostgreSQL, identifiers unique through their own table.

1. ``usage_eventidentifier``: every stored identifier once (see ``EventIdentifier``),
   filled from the ledger.
2. The voided-event link loses its database foreign key (a partitioned table's primary
   key must include the partition key, so nothing can reference ``id`` alone).
3. The ledger's ``UNIQUE (identifier)`` goes (identifier uniqueness now lives in 1).
4. On PostgreSQL only: ``usage_usageevent`` becomes a table partitioned by range of
   ``timestamp``, one partition a month (``usage_usageevent_pYYYY_MM``) from the oldest
   stored event's month (or 35 days back) to three months ahead, plus a default partition that catches
   anything outside them (so nothing is ever refused for want of a partition; the beat
   task ``usage.tasks.ensure_ledger_partitions`` creates months ahead and moves rows out
   of the default one). Primary key ``(id, timestamp)``; ids from the sequence
   ``usage_usageevent_id_seq`` (PostgreSQL 15 has no identity columns on partitioned
   tables); the same index names, check and foreign keys as before. SQLite keeps one
   unpartitioned table. Reversible.

The test suite builds its tables from the models (``--no-migrations``); on PostgreSQL
``tests/conftest.py`` then calls :func:`partition_ledger` so the suite runs on the same
partitioned table as production.
"""

from datetime import UTC, datetime, timedelta

from django.db import migrations, models

TABLE = "usage_usageevent"
MONTHS_AHEAD = 3


def month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(moment: datetime) -> datetime:
    return datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{TABLE}_p{month.year:04d}_{month.month:02d}"


def _rows(cursor, sql, params=None):
    cursor.execute(sql, params or [])
    return cursor.fetchall()


def partition_ledger(connection, now: datetime | None = None) -> None:
    """Turn the plain ``usage_usageevent`` into the partitioned one, keeping its rows,
    index names, check and foreign keys (PostgreSQL only; a no-op elsewhere or when it
    is already partitioned)."""
    if connection.vendor != "postgresql":
        return
    now = now or datetime.now(UTC)
    with connection.cursor() as cursor:
        # Tables built from the models (the test suite) have Django's LIKE index on the
        # identifier key; the migration never makes it (create_identifier_table).
        for (name,) in _rows(
            cursor,
            "SELECT indexname FROM pg_indexes WHERE tablename = 'usage_eventidentifier' "
            "AND indexname LIKE %s",
            ["%\\_like"],
        ):
            cursor.execute(f'DROP INDEX "{name}"')
        (kind,) = _rows(cursor, "SELECT relkind FROM pg_class WHERE relname = %s", [TABLE])[0]
        if kind == "p":
            return
        old = f"{TABLE}_unpartitioned"
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
        cursor.execute(f"ALTER INDEX {TABLE}_pkey RENAME TO {TABLE}_pkey_old")
        indexes = _rows(
            cursor,
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname <> %s",
            [old, f"{TABLE}_pkey_old"],
        )
        foreign_keys = _rows(
            cursor,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f'",
            [old],
        )
        for name, _ in indexes:
            cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{name}_old"')
        for name, _ in foreign_keys:
            cursor.execute(f'ALTER TABLE {old} DROP CONSTRAINT "{name}"')
        # LIKE copies the columns, NOT NULLs and CHECKs; not the identity, indexes or FKs.
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {old} INCLUDING CONSTRAINTS, "
            'PRIMARY KEY (id, "timestamp")) PARTITION BY RANGE ("timestamp")'
        )
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        (oldest,) = _rows(cursor, f'SELECT min("timestamp") FROM {old}')[0]
        # Ingestion accepts events up to 35 days old (Stripe's window), so from there.
        earliest = now - timedelta(days=35)
        month = month_start(min(oldest, earliest) if oldest else earliest)
        last = month_start(now)
        for _ in range(MONTHS_AHEAD):
            last = next_month(last)
        while month <= last:
            cursor.execute(
                f"CREATE TABLE {partition_name(month)} PARTITION OF {TABLE} "
                "FOR VALUES FROM (%s) TO (%s)",
                [month, next_month(month)],
            )
            month = next_month(month)
        for name, definition in indexes:
            on_old = f"ON public.{old} "
            assert on_old in definition, definition
            cursor.execute(definition.replace(on_old, f"ON {TABLE} "))
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {old}")
        (top,) = _rows(cursor, f"SELECT coalesce(max(id), 0) FROM {old}")[0]
        cursor.execute(f"DROP TABLE {old}")  # its identity sequence goes with it
        cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
        if top:
            cursor.execute(f"SELECT setval('{TABLE}_id_seq', %s)", [top])
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        for name, definition in foreign_keys:
            cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')


def unpartition_ledger(connection) -> None:
    """The reverse: one plain table with an identity primary key on ``id``."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        (kind,) = _rows(cursor, "SELECT relkind FROM pg_class WHERE relname = %s", [TABLE])[0]
        if kind != "p":
            return
        old = f"{TABLE}_partitioned"
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
        cursor.execute(f"ALTER INDEX {TABLE}_pkey RENAME TO {TABLE}_pkey_old")
        indexes = _rows(
            cursor,
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
            "AND NOT i.indisprimary",
            [old],
        )
        foreign_keys = _rows(
            cursor,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f' AND conparentid = 0",
            [old],
        )
        for name, _ in indexes:
            cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{name}_old"')
        for name, _ in foreign_keys:
            cursor.execute(f'ALTER TABLE {old} DROP CONSTRAINT "{name}"')
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {old} INCLUDING CONSTRAINTS)")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id DROP DEFAULT")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {old}")
        (top,) = _rows(cursor, f"SELECT coalesce(max(id), 0) FROM {TABLE}")[0]
        cursor.execute(f"DROP TABLE {old} CASCADE")  # partitions and the sequence
        cursor.execute(
            f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY "
            f"(START WITH {top + 1})"
        )
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        for name, definition in indexes:
            on_old = f"ON public.{old} "
            definition = definition.replace("ON ONLY ", "ON ")
            assert on_old in definition, definition
            cursor.execute(definition.replace(on_old, f"ON {TABLE} "))
        for name, definition in foreign_keys:
            cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')


def forwards(apps, schema_editor):
    partition_ledger(schema_editor.connection)


def backwards(apps, schema_editor):
    unpartition_ledger(schema_editor.connection)


FILL_IDENTIFIERS = (
    "INSERT INTO usage_eventidentifier (identifier, event_id, timestamp, payload_hash) "
    "SELECT identifier, id, timestamp, payload_hash FROM usage_usageevent"
)


def fill_identifiers(apps, schema_editor):
    schema_editor.execute(FILL_IDENTIFIERS)


IDENTIFIER_TABLE_PG = (
    "CREATE TABLE usage_eventidentifier (identifier varchar(100) NOT NULL PRIMARY KEY, "
    'event_id bigint NULL, "timestamp" timestamp with time zone NOT NULL, '
    "payload_hash varchar(64) NOT NULL)"
)


def create_identifier_table(apps, schema_editor):
    """On PostgreSQL without the second, ``varchar_pattern_ops`` index Django gives a
    varchar primary key (for LIKE queries): nothing queries identifiers by prefix, and
    every index costs each insert."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(IDENTIFIER_TABLE_PG)
    else:  # what Django's CreateModel makes on SQLite
        schema_editor.execute(
            'CREATE TABLE "usage_eventidentifier" ("identifier" varchar(100) NOT NULL '
            'PRIMARY KEY, "event_id" bigint NULL, "timestamp" datetime NOT NULL, '
            '"payload_hash" varchar(64) NOT NULL)'
        )


def drop_identifier_table(apps, schema_editor):
    schema_editor.execute("DROP TABLE usage_eventidentifier")


class Migration(migrations.Migration):
    atomic = True

    dependencies = [("usage", "0015_members_keys")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="EventIdentifier",
                    fields=[
                        (
                            "identifier",
                            models.CharField(max_length=100, primary_key=True, serialize=False),
                        ),
                        (
                            "event_id",
                            models.BigIntegerField(
                                help_text="Null only within the insert", null=True
                            ),
                        ),
                        ("timestamp", models.DateTimeField()),
                        ("payload_hash", models.CharField(max_length=64)),
                    ],
                ),
            ],
            database_operations=[
                migrations.RunPython(create_identifier_table, drop_identifier_table),
            ],
        ),
        migrations.RunPython(fill_identifiers, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="usageevent", name="usage_event_identifier_unique"),
        migrations.AlterField(
            model_name="voidedevent",
            name="event",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=models.deletion.PROTECT,
                related_name="void",
                to="usage.usageevent",
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
