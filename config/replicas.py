"""Which database a search reads from: read replicas (`DATABASE_REPLICA_URLS`),
and its pooled connection given back while it computes.

A search is a read that may lag the primary by a moment: its vector query and
the lookups of what it found run on a replica that answers, taken in turn.
Everything else reads from the primary, and so sees its own writes: the
settings a search uses, the item a "more like this" starts from, every read
of the API's other operations, of workers and of the console.

A search that fails on a replica runs again on the primary: clients see an
answer, not the outage. A replica that then does not accept a connection
(stopped, unreachable) is left alone for `DATABASE_REPLICA_RETRY_SECONDS`;
one that does (its pool was busy, recovery cancelled the query) is tried
again by the next search.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import django.db
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from prometheus_client import Counter

logger = logging.getLogger(__name__)

T = TypeVar("T")
REPLICA_PREFIX = "replica_"

# Registered by ops_console.metrics with the other metrics of /metrics.
SEARCH_READS = Counter(
    "stockmind_search_reads", "Searches by the database that served them.", ["database"], registry=None
)

_reading: ContextVar[str | None] = ContextVar("stockmind_search_database", default=None)
_down_until: dict[str, float] = {}
_lock = threading.Lock()
_turn = itertools.count()


def replica_aliases() -> list[str]:
    return [alias for alias in settings.DATABASES if alias.startswith(REPLICA_PREFIX)]


def _answering() -> list[str]:
    now = time.monotonic()
    with _lock:
        return [alias for alias in replica_aliases() if _down_until.get(alias, 0.0) <= now]


def _still_answers(alias: str) -> bool:
    """Whether the replica accepts a connection of its own (outside its pool):
    a replica that failed a search because its pool was busy, or because
    recovery cancelled the query, is not down."""
    database = connections[alias]
    params = database.get_connection_params()
    params.pop("context", None)
    try:
        with database.Database.connect(**params):  # type: ignore[attr-defined]
            return True
    except database.Database.Error:  # type: ignore[attr-defined] # psycopg's: it does not answer
        return False


def _mark_down(alias: str, exc: Exception) -> None:
    with _lock:
        _down_until[alias] = time.monotonic() + settings.DATABASE_REPLICA_RETRY_SECONDS
    logger.warning(
        "replica %s failed (%s: %s) and does not answer: searches read from the primary for %d s",
        alias,
        type(exc).__name__,
        exc,
        settings.DATABASE_REPLICA_RETRY_SECONDS,
    )
    try:
        connections[alias].close()  # a broken connection goes back to nobody
    except django.db.Error:
        pass


@contextmanager
def _reading_from(alias: str) -> Iterator[None]:
    token = _reading.set(alias)
    try:
        yield
    finally:
        _reading.reset(token)


def search_read(read: Callable[[], T]) -> T:
    """Run `read` (a search's queries) on a replica that answers, or on the
    primary when none is configured or the one tried fails."""
    candidates = _answering()
    if candidates:
        alias = candidates[next(_turn) % len(candidates)]
        try:
            with _reading_from(alias):
                result = read()
        except (django.db.OperationalError, django.db.InterfaceError, django.db.ProgrammingError) as exc:
            # Unreachable, its pool busy, the query cancelled by recovery, or its
            # schema behind the primary's mid-migration: this search reads
            # from the primary, and only a replica that no longer answers is
            # left alone.
            if _still_answers(alias):
                logger.info("replica %s failed a search (%s): read from the primary", alias, exc)
            else:
                _mark_down(alias, exc)
        else:
            SEARCH_READS.labels(alias).inc()
            return result
    with _reading_from(DEFAULT_DB_ALIAS):
        result = read()
    SEARCH_READS.labels(DEFAULT_DB_ALIAS).inc()
    return result


def release_connections() -> None:
    """Give this thread's pooled connections back before a long computation
    that needs none (a query's forward pass): other requests use them
    meanwhile, and the next query borrows one again. Connections inside a
    transaction, and unpooled ones, are kept; call it with no cursor open."""
    for database in connections.all(initialized_only=True):
        idle = database.connection is not None and database.autocommit and not database.in_atomic_block
        if idle and getattr(database, "pool", None):
            database.close()


def close_pools() -> None:
    """Close this thread's connections and their databases' pools: the next
    connection makes a new pool (with the settings as they are then). Before a
    process forks children that must not share its sockets or pool threads."""
    for database in connections.all(initialized_only=True):
        database.close()
        with contextlib.suppress(KeyError):
            database.close_pool()  # type: ignore[attr-defined] # PostgreSQL's wrapper; a no-op unpooled


def reading_connection() -> BaseDatabaseWrapper:
    """The connection a search's raw SQL runs on: its replica, or the primary."""
    return connections[_reading.get() or DEFAULT_DB_ALIAS]


class ReplicaRouter:
    """ORM reads go to the replica of the search running (search_read), and
    to the primary everywhere else, whichever database an object came from;
    writes and migrations only ever go to the primary."""

    def db_for_read(self, model, **hints) -> str:
        return _reading.get() or DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the replicas hold the primary's rows

    def allow_migrate(self, db: str, app_label: str, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS
