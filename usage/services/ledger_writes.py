"""The SQL of an ingest transaction: insert events once, add them to the hourly rollups.

Set-based whatever the batch size. On PostgreSQL one statement per batch
(:func:`insert_events_with_rollups`): the identifiers claimed with ``INSERT ... ON
CONFLICT (identifier) DO NOTHING``, the claimed events inserted, and ``INSERT ... ON
CONFLICT DO UPDATE`` of the rollups aggregated from the inserted rows. Elsewhere (and
for the hour cap's careful path) :func:`insert_events` then :func:`upsert_rollups`. The
rollup upsert is guarded so that no hour's sum crosses
:data:`usage.event_validation.MAX_HOUR_SUM` (the guard is what keeps every later sum of
hours inside a signed 64-bit integer; :mod:`usage.services.hour_cap` decides what to do
with the hours it refuses).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection

from usage.event_validation import MAX_HOUR_SUM, ValidEvent

RollupKey = tuple[int, int, datetime]  # (account id, meter id, hour)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _source(columns: list[tuple[str, str]], rows: list[tuple]) -> tuple[str, list]:
    """The rows as an INSERT source: on PostgreSQL ``SELECT ... FROM unnest(arrays)``
    (one parameter per column, whatever the batch size), elsewhere ``VALUES``."""
    names = ", ".join(name for name, _ in columns)
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{sql_type}[]" for _, sql_type in columns)
        params = [
            _array_literal(column, sql_type)
            for column, (_, sql_type) in zip(zip(*rows, strict=True), columns, strict=True)
        ]
        return f"SELECT * FROM unnest({arrays}) AS u({names}) ORDER BY 1, 2, 3", params
    adapt = connection.ops.adapt_datetimefield_value
    one = "(" + ",".join(["%s"] * len(columns)) + ")"
    params = [adapt(v) if isinstance(v, datetime) else v for row in rows for v in row]
    return "VALUES " + ",".join([one] * len(rows)), params


def _array_literal(values, sql_type: str) -> str:
    """A PostgreSQL array literal of the column (passed as one string parameter).

    Built here with ``str.join`` instead of letting psycopg adapt a list: its array
    dumper matches a regular expression against every string element and dispatches a
    dumper per element, about a fifth of a 1,000-event batch's Python time. Strings
    are double-quoted with backslash and quote escaped (validation has refused NUL);
    timestamps are ISO 8601 with their offset; integers are digits. No NULLs."""
    if sql_type == "varchar":
        joined = "".join(values)
        if '"' in joined or "\\" in joined:
            values = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
        return '{"' + '","'.join(values) + '"}'
    if sql_type == "timestamptz":
        return "{" + ",".join([v.isoformat() for v in values]) + "}"
    return "{" + ",".join(map(str, values)) + "}"


def as_utc(value) -> datetime:
    """A datetime column as returned by the driver (SQLite: a naive UTC string)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_EVENT_COLUMNS = [
    ("identifier", "varchar"),
    ("account_id", "bigint"),
    ("meter_id", "bigint"),
    ("value", "bigint"),
    ("timestamp", "timestamptz"),
    ("received_at", "timestamptz"),
    ("payload_hash", "varchar"),
]


def insert_events(rows: list[ValidEvent], received_at: datetime) -> dict[str, int]:
    """Insert the rows (skipping known identifiers): identifier -> id of those inserted.

    An identifier is claimed in ``usage_eventidentifier`` (unique for ever, whatever
    partition its event lands in; see ``usage.models.EventIdentifier``) and its event
    stored only if the claim succeeded. On PostgreSQL one statement does both, the ids
    drawn from the ledger's sequence; a concurrent batch claiming the same identifier
    waits for this one's transaction and then skips it."""
    if not rows:
        return {}
    values = [
        (r.identifier, r.account_id, r.meter_id, r.value, r.timestamp, received_at,
         r.payload_hash)
        for r in rows
    ]  # fmt: skip
    if connection.vendor == "postgresql":
        return _insert_events_postgresql(values)
    return _insert_events_portable(values)


def _insert_events_postgresql(values: list[tuple]) -> dict[str, int]:
    source, params = _source(_EVENT_COLUMNS, values)
    sql = (
        f"WITH src AS ({source}), "
        "claimed AS (INSERT INTO usage_eventidentifier "
        "(identifier, event_id, timestamp, payload_hash) "
        "SELECT identifier, nextval('usage_usageevent_id_seq'), timestamp, payload_hash "
        "FROM src ORDER BY identifier "
        "ON CONFLICT (identifier) DO NOTHING RETURNING identifier, event_id) "
        "INSERT INTO usage_usageevent (id, identifier, account_id, meter_id, value, "
        "timestamp, received_at, payload_hash) "
        "SELECT claimed.event_id, src.identifier, src.account_id, src.meter_id, src.value, "
        "src.timestamp, src.received_at, src.payload_hash "
        "FROM src JOIN claimed USING (identifier) RETURNING identifier, id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


# The ledger statement of a batch on PostgreSQL: claim the identifiers, insert the
# claimed events and add exactly the inserted rows to their hours' rollups, aggregated by
# the database from the insert's RETURNING rows. Keys are added in key order (as
# identifiers are claimed in identifier order), so concurrent batches wait instead of
# deadlocking. An hour whose batch sum alone is over the cap is not offered to the
# upsert, and one whose stored sum leaves no room is left as it was by its guard; both
# come back as refused keys for usage.services.hour_cap. Answers one row per inserted
# event (identifier, id, NULL, NULL) and one per refused key (NULL, account, meter, hour).
_LEDGER_STATEMENT = """
WITH src AS (
  SELECT * FROM unnest(%s::varchar[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
    %s::varchar[]) AS u(identifier, account_id, meter_id, value, epoch, payload_hash)
), claimed AS (
  INSERT INTO usage_eventidentifier (identifier, event_id, timestamp, payload_hash)
  SELECT identifier, nextval('usage_usageevent_id_seq'), to_timestamp(epoch), payload_hash
  FROM src ORDER BY identifier
  ON CONFLICT (identifier) DO NOTHING RETURNING identifier, event_id, timestamp
), ins AS (
  INSERT INTO usage_usageevent (id, identifier, account_id, meter_id, value, timestamp,
    received_at, payload_hash)
  SELECT c.event_id, s.identifier, s.account_id, s.meter_id, s.value, c.timestamp,
    %s::timestamptz, s.payload_hash
  FROM src s JOIN claimed c USING (identifier)
  RETURNING identifier, id, account_id, meter_id, value, timestamp
), agg AS (
  SELECT account_id, meter_id, date_trunc('hour', timestamp, 'UTC') AS hour,
    sum(value)::bigint AS sum_value, count(*) AS event_count,
    (array_agg(value ORDER BY timestamp DESC, id DESC))[1] AS last_value,
    max(timestamp) AS last_timestamp,
    (array_agg(id ORDER BY timestamp DESC, id DESC))[1] AS last_event_id
  FROM ins GROUP BY 1, 2, 3
), up AS (
  INSERT INTO usage_usagerollup AS r (account_id, meter_id, hour, sum_value, event_count,
    last_value, last_timestamp, last_event_id)
  SELECT * FROM agg WHERE sum_value <= %s ORDER BY account_id, meter_id, hour
  ON CONFLICT (account_id, meter_id, hour) DO UPDATE SET
    sum_value = r.sum_value + excluded.sum_value,
    event_count = r.event_count + excluded.event_count,
    last_value = CASE WHEN (excluded.last_timestamp, excluded.last_event_id)
      > (r.last_timestamp, r.last_event_id) THEN excluded.last_value ELSE r.last_value END,
    last_timestamp = CASE WHEN (excluded.last_timestamp, excluded.last_event_id)
      > (r.last_timestamp, r.last_event_id) THEN excluded.last_timestamp
      ELSE r.last_timestamp END,
    last_event_id = CASE WHEN (excluded.last_timestamp, excluded.last_event_id)
      > (r.last_timestamp, r.last_event_id) THEN excluded.last_event_id
      ELSE r.last_event_id END
  WHERE r.sum_value <= %s - excluded.sum_value
  RETURNING account_id, meter_id, hour
)
SELECT identifier, id, NULL::bigint, NULL::timestamptz FROM ins
UNION ALL
SELECT NULL, account_id, meter_id, hour FROM (
  SELECT account_id, meter_id, hour FROM agg EXCEPT SELECT account_id, meter_id, hour FROM up
) refused
"""


def insert_events_with_rollups(
    rows: list[ValidEvent], received_at: datetime
) -> tuple[dict[str, int], set[RollupKey]]:
    """PostgreSQL: :func:`insert_events` and :func:`upsert_rollups` of the inserted rows
    in one statement. Returns identifier -> id of the rows inserted, and the rollup keys
    it did not add to (the hour is full, or the batch alone would overfill it): their
    rows are in the ledger but not yet in the rollups, for ``usage.services.hour_cap``.
    ``rows`` in identifier order, each identifier once."""
    if not rows:
        return {}, set()
    identifiers = [r.identifier for r in rows]
    params = [
        _array_literal(identifiers, "varchar"),
        _array_literal([r.account_id for r in rows], "bigint"),
        _array_literal([r.meter_id for r in rows], "bigint"),
        _array_literal([r.value for r in rows], "bigint"),
        _array_literal([r.epoch for r in rows], "bigint"),
        _array_literal([r.payload_hash for r in rows], "varchar"),
        received_at.isoformat(),
        MAX_HOUR_SUM,
        MAX_HOUR_SUM,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_LEDGER_STATEMENT, params)
        answer = cursor.fetchall()
    ids: dict[str, int] = {}
    refused: set[RollupKey] = set()
    for identifier, number, meter_id, hour in answer:
        if identifier is None:
            refused.add((number, meter_id, as_utc(hour)))
        else:
            ids[identifier] = number
    return ids, refused


def _insert_events_portable(values: list[tuple]) -> dict[str, int]:
    """SQLite (one writer at a time): claim, insert the claimed, then record their ids."""
    claim_source, claim_params = _source(
        [("identifier", "varchar"), ("timestamp", "timestamptz"), ("payload_hash", "varchar")],
        [(v[0], v[4], v[6]) for v in values],
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO usage_eventidentifier (identifier, timestamp, payload_hash) "
            f"SELECT * FROM ({claim_source}) WHERE true "
            "ON CONFLICT (identifier) DO NOTHING RETURNING identifier",
            claim_params,
        )
        claimed = {identifier for (identifier,) in cursor.fetchall()}
        if not claimed:
            return {}
        source, params = _source(_EVENT_COLUMNS, [v for v in values if v[0] in claimed])
        cursor.execute(
            "INSERT INTO usage_usageevent (identifier, account_id, meter_id, value, "
            f"timestamp, received_at, payload_hash) {source} RETURNING identifier, id",
            params,
        )
        ids = dict(cursor.fetchall())
        cursor.executemany(
            "UPDATE usage_eventidentifier SET event_id = %s WHERE identifier = %s",
            [(event_id, identifier) for identifier, event_id in ids.items()],
        )
    return ids


def delete_events(event_ids: list[int]) -> None:
    """Take back rows this transaction inserted (nothing refers to them yet), and their
    identifiers' claims, so that the same identifiers may be sent again."""
    if not event_ids:
        return
    marks = ",".join(["%s"] * len(event_ids))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM usage_usageevent WHERE id IN ({marks})", event_ids)
        cursor.execute(f"DELETE FROM usage_eventidentifier WHERE event_id IN ({marks})", event_ids)


def upsert_rollups(rows: list[ValidEvent], ids: dict[str, int]) -> set[RollupKey]:
    """Add exactly these (newly inserted) rows to the hourly rollups, except in hours
    where the stored sum plus these rows' would cross ``MAX_HOUR_SUM``: those rows stay
    as they were. Returns the keys that were added to.

    The caller makes sure each key's own sum here is at most ``MAX_HOUR_SUM`` (a new
    row is inserted unguarded); the guard is written ``stored <= cap - added`` so that
    it cannot overflow even on a row stored above the cap before the cap existed."""
    if not rows:
        return set()
    buckets: dict[RollupKey, list] = {}
    for row in rows:
        event_id = ids[row.identifier]
        key = (row.account_id, row.meter_id, hour_of(row.timestamp))
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = [row.value, 1, row.value, row.timestamp, event_id]
            continue
        bucket[0] += row.value
        bucket[1] += 1
        if (row.timestamp, event_id) > (bucket[3], bucket[4]):
            bucket[2], bucket[3], bucket[4] = row.value, row.timestamp, event_id
    table = connection.ops.quote_name("usage_usagerollup")
    source, params = _source(
        [
            ("account_id", "bigint"),
            ("meter_id", "bigint"),
            ("hour", "timestamptz"),
            ("sum_value", "bigint"),
            ("event_count", "bigint"),
            ("last_value", "bigint"),
            ("last_timestamp", "timestamptz"),
            ("last_event_id", "bigint"),
        ],
        [(*key, *bucket) for key, bucket in sorted(buckets.items())],
    )
    newer = (
        f"(excluded.last_timestamp, excluded.last_event_id) > "
        f"({table}.last_timestamp, {table}.last_event_id)"
    )
    sql = (
        f"INSERT INTO {table} (account_id, meter_id, hour, sum_value, event_count, "
        f"last_value, last_timestamp, last_event_id) {source} "
        "ON CONFLICT (account_id, meter_id, hour) DO UPDATE SET "
        f"sum_value = {table}.sum_value + excluded.sum_value, "
        f"event_count = {table}.event_count + excluded.event_count, "
        f"last_value = CASE WHEN {newer} THEN excluded.last_value "
        f"ELSE {table}.last_value END, "
        f"last_timestamp = CASE WHEN {newer} THEN excluded.last_timestamp "
        f"ELSE {table}.last_timestamp END, "
        f"last_event_id = CASE WHEN {newer} THEN excluded.last_event_id "
        f"ELSE {table}.last_event_id END "
        f"WHERE {table}.sum_value <= %s - excluded.sum_value "
        "RETURNING account_id, meter_id, hour"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, MAX_HOUR_SUM])
        return {(a, m, as_utc(h)) for a, m, h in cursor.fetchall()}


def stored_hashes(identifiers: list[str]) -> dict[str, str]:
    from usage.models import EventIdentifier

    return dict(
        EventIdentifier.objects.filter(identifier__in=identifiers).values_list(
            "identifier", "payload_hash"
        )
    )
