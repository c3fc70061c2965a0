"""Dashboards on a streaming replica: which database each query goes to.

With ``DATABASE_REPLICA_URL`` set, the settings add a ``replica`` alias (a PostgreSQL hot
standby). Without it there is no such alias and this router answers ``None`` to every
question, which is Django's default routing: everything on ``default``.

- Writes always go to the primary (``default``), also for rows that were read from the
  replica (``save()`` of such an instance, or a related manager's ``create()``).
- Reads go to the replica only inside :func:`replica_reads`, which
  ``config.replica_middleware`` opens for GET/HEAD requests of the customer pages
  (``dashboards:*`` and the embed widget), and only while that request has not written
  (the middleware pins it to the primary after its first write statement), is not in
  ``transaction.atomic`` on the primary, and is not running a Celery task eagerly.
- Some tables are always read on the primary, whatever the request: who is signed in and
  what they may see (sessions, users, groups and permissions, sign-in throttling,
  accounts, memberships, invitations, and the API keys whose revocation ends embed
  widgets at once), so an access change is never honoured late by a lagging replica.
- ``migrate`` never touches the replica (it receives the schema by streaming).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from celery import current_task
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"

PRIMARY_ONLY_APPS = frozenset(
    {"admin", "auth", "axes", "contenttypes", "sessions", "account", "socialaccount"}
)
PRIMARY_ONLY_MODELS = frozenset(
    {"billing.account", "billing.membership", "billing.invitation", "usage.ingestkey"}
)


@dataclass
class ReplicaReads:
    """The state of one request that may read from the replica."""

    pinned: bool = False  # it wrote (or the replica failed): the rest reads the primary
    reads: int = 0  # queries routed to the replica so far


_current: ContextVar[ReplicaReads | None] = ContextVar("meterdesk_replica_reads", default=None)


def replica_configured() -> bool:
    return REPLICA in connections.settings


def current_replica_reads() -> ReplicaReads | None:
    return _current.get()


@contextmanager
def replica_reads(*, pinned: bool = False) -> Iterator[ReplicaReads]:
    """Inside this block, reads not excluded above go to the replica (if configured)."""
    state = ReplicaReads(pinned=pinned)
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)


def _in_transaction_on_primary() -> bool:
    """In ``transaction.atomic`` on ``default``. The outer blocks a Django ``TestCase``
    holds around each test (marked ``_from_testcase`` by Django) are not the code's."""
    blocks = connections[DEFAULT_DB_ALIAS].atomic_blocks
    return any(not getattr(block, "_from_testcase", False) for block in blocks)


def _away_from_replica(hints: dict) -> str | None:
    """An instance read from the replica still reads and writes its relations on the
    primary outside a replica block; anything else keeps Django's default routing."""
    instance = hints.get("instance")
    if instance is not None and instance._state.db == REPLICA:
        return DEFAULT_DB_ALIAS
    return None


class ReplicaRouter:
    def db_for_read(self, model, **hints) -> str | None:
        state = _current.get()
        if (
            state is None
            or state.pinned
            or model._meta.app_label in PRIMARY_ONLY_APPS
            or model._meta.label_lower in PRIMARY_ONLY_MODELS
            or not replica_configured()
            or _in_transaction_on_primary()
            or current_task  # a task run eagerly inside the request: the primary, as in a worker
        ):
            return _away_from_replica(hints)
        state.reads += 1
        return REPLICA

    def db_for_write(self, model, **hints) -> str | None:
        return _away_from_replica(hints)

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        both = {obj1._state.db, obj2._state.db}
        return True if both <= {DEFAULT_DB_ALIAS, REPLICA, None} else None

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool | None:
        return False if db == REPLICA else None
