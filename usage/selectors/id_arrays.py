"""Conditions on many ids at once that cost one parameter on PostgreSQL.

An ``IN (%s, %s, ...)`` list of a sweep chunk's 500 account ids cost Django and psycopg
several milliseconds of Python per query (each element prepared, the query text
re-parsed: it is too long for psycopg's cache), every chunk. On PostgreSQL the ids go
as one array literal instead (``= ANY(%s::bigint[])``, which plans like the list);
elsewhere (SQLite) as the plain ``__in`` list.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL


def int_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers (``{1,2,3}``), for a ``%s::bigint[]``."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def timestamp_array(values: Iterable[datetime | None]) -> str:
    """A PostgreSQL array literal of aware datetimes (None: NULL), for ``%s::timestamptz[]``."""
    return "{" + ",".join("NULL" if v is None else f'"{v.isoformat()}"' for v in values) + "}"


def ids_condition(model, field: str, ids: Iterable[int]) -> Q | RawSQL:
    """A ``filter()`` condition: ``model``'s column ``field`` (an integer column, by its
    attribute name, e.g. ``account_id``) is one of ``ids``."""
    ids = list(ids)
    if connection.vendor != "postgresql":
        return Q(**{f"{field}__in": ids})
    column = model._meta.get_field(field.removesuffix("_id")).column
    table = connection.ops.quote_name(model._meta.db_table)
    return RawSQL(
        f"{table}.{connection.ops.quote_name(column)} = ANY(%s::bigint[])",
        [int_array(ids)],
        output_field=BooleanField(),
    )
