"""Which requests read from the replica (``config.db_router``), and read-after-write.

With a ``replica`` database configured (``DATABASE_REPLICA_URL``):

- GET and HEAD requests of the customer pages (the ``dashboards`` URLs and the embed
  widget) read from the replica. Nothing else does: not the API, the admin, webhooks,
  sign-in, or Celery tasks (they run outside any request).
- A request that writes (any method but GET/HEAD/OPTIONS/TRACE, or a statement on the
  primary that is not a read) pins itself to the primary for the rest of it, and -- for a
  browser, i.e. a request with cookies -- the browser for ``DATABASE_REPLICA_PIN_SECONDS``
  after it, with a signed cookie: a user who has just changed something reads it back
  from the primary, not from a replica that may not have replayed it yet.
- If the replica fails while a page reads from it (down, restarting, unreachable), the
  page is served again from the primary: a GET is safe to repeat.

Without a replica this middleware does nothing.
"""

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from math import ceil

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from config.db_router import REPLICA, current_replica_reads, replica_configured, replica_reads

log = logging.getLogger(__name__)

PIN_COOKIE = "md_primary_until"
PIN_SALT = "config.replica_middleware.pin"
READ_METHODS = frozenset({"GET", "HEAD"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
EMBED_PAGES = frozenset({"embed_usage", "embed_usage_chart"})
# The first word of a statement that does not change the database; any other is a write.
READ_STATEMENTS = frozenset(
    {"SELECT", "SHOW", "SET", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN", "EXPLAIN"}
)


def is_write_statement(sql) -> bool:
    if not isinstance(sql, str):
        return True  # a composed statement: assume it writes
    words = sql.lstrip(" \t\r\n(").split(None, 1)
    if not words:
        return False
    first = words[0].upper()
    return first not in READ_STATEMENTS or (first == "SELECT" and " FOR UPDATE" in sql.upper())


def is_customer_page(request: HttpRequest) -> bool:
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return match.namespace == "dashboards" or match.url_name in EMBED_PAGES


def pinned_by_cookie(request: HttpRequest) -> bool:
    value = request.get_signed_cookie(PIN_COOKIE, default=None, salt=PIN_SALT)
    try:
        return value is not None and time.time() < float(value)
    except ValueError:
        return False


class ReplicaReadsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not replica_configured():
            return self.get_response(request)
        wrote = request.method not in SAFE_METHODS

        def note_writes(execute, sql, params, many, context):
            nonlocal wrote
            if is_write_statement(sql):
                wrote = True
                state = current_replica_reads()
                if state is not None:
                    state.pinned = True  # read-after-write within the request
            return execute(sql, params, many, context)

        with connections[DEFAULT_DB_ALIAS].execute_wrapper(note_writes):
            if request.method in READ_METHODS and is_customer_page(request):
                with replica_reads(pinned=pinned_by_cookie(request)):
                    response = self.get_response(request)
            else:
                response = self.get_response(request)
        seconds = settings.DATABASE_REPLICA_PIN_SECONDS
        if wrote and seconds > 0 and (request.COOKIES or response.cookies):
            response.set_signed_cookie(
                PIN_COOKIE,
                f"{time.time() + seconds:.3f}",
                salt=PIN_SALT,
                max_age=ceil(seconds),
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        """The replica failed under a page: serve it again from the primary, once."""
        state = current_replica_reads()
        if (
            state is None
            or state.pinned
            or not state.reads
            or not isinstance(exception, OperationalError | InterfaceError)
        ):
            return None
        log.warning("replica read failed, serving %s from the primary", request.path, exc_info=True)
        state.pinned = True
        with suppress(OperationalError, InterfaceError):  # already gone
            connections[REPLICA].close()
        match = request.resolver_match
        return match.func(request, *match.args, **match.kwargs)
