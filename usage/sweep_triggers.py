"""The database triggers that record rollup writes for the alert sweep (``SweepTouch``).

PostgreSQL: three statement-level triggers (INSERT, UPDATE, DELETE; an
``INSERT ... ON CONFLICT DO UPDATE`` fires the first two) with transition tables, so an
ingest statement costs one more ``INSERT ... SELECT DISTINCT account_id`` however many
rollup rows it wrote. SQLite (development, tests) has row-level triggers only.

Installed by migration 0017 and, for databases built from the models without
migrations (the test suite runs with ``--no-migrations``), after every ``migrate``
(``post_migrate``, connected in ``usage.apps``); both are idempotent.
"""

from django.db import connections

POSTGRESQL = [
    """
    CREATE OR REPLACE FUNCTION usage_sweep_touch() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO usage_sweeptouch (account_id) SELECT DISTINCT account_id FROM changed;
        RETURN NULL;
    END
    $$
    """,
    *(
        f"""
        CREATE OR REPLACE TRIGGER usage_rollup_sweep_touch_{event.lower()}
        AFTER {event} ON usage_usagerollup REFERENCING {table} TABLE AS changed
        FOR EACH STATEMENT EXECUTE FUNCTION usage_sweep_touch()
        """
        for event, table in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
    ),
]

SQLITE = [
    f"""
    CREATE TRIGGER IF NOT EXISTS usage_rollup_sweep_touch_{event.lower()}
    AFTER {event} ON usage_usagerollup FOR EACH ROW
    BEGIN
        INSERT INTO usage_sweeptouch (account_id) VALUES ({row}.account_id);
    END
    """
    for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
]

DROP = {
    "postgresql": [
        *(
            f"DROP TRIGGER IF EXISTS usage_rollup_sweep_touch_{e} ON usage_usagerollup"
            for e in ("insert", "update", "delete")
        ),
        "DROP FUNCTION IF EXISTS usage_sweep_touch()",
    ],
    "sqlite": [
        f"DROP TRIGGER IF EXISTS usage_rollup_sweep_touch_{e}"
        for e in ("insert", "update", "delete")
    ],
}


def sweep_triggers_install(*, using: str = "default") -> None:
    connection = connections[using]
    statements = {"postgresql": POSTGRESQL, "sqlite": SQLITE}.get(connection.vendor, [])
    tables = connection.introspection.table_names()
    if "usage_usagerollup" not in tables or "usage_sweeptouch" not in tables:
        return
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def sweep_triggers_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """``post_migrate`` receiver (see the module docstring)."""
    sweep_triggers_install(using=using)
