"""The server's pgvector: the version the database has, and the least this
code runs on.

pgvector 0.8 added iterative index scans (`hnsw.iterative_scan`): an HNSW
scan filtered by tenant (or category) goes on until enough rows pass the
filter, instead of returning the `ef_search` nearest of the whole index and
dropping the rest. Every index plan of search/query.py relies on them, so an
older pgvector is refused where it would first matter: `manage.py migrate`
(a database system check), a worker's start-up and `/health/ready`.
"""

from __future__ import annotations

from django.db import connection

MIN_PGVECTOR = (0, 8)
# Attribute of a connection that caches its server's pgvector version.
CACHE_ATTRIBUTE = "_stockmind_pgvector"


def _parse(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _shown(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def installed_and_available() -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """(the version of the extension in this database, or None if it is not
    created yet; the version the server would create or update to, or None
    if the server has no pgvector)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
            " (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"
        )
        installed, available = cursor.fetchone()
    return (_parse(installed) if installed else None), (_parse(available) if available else None)


def pgvector_version() -> tuple[int, ...]:
    """The version of the extension in this database (cached per connection);
    () before the migrations create it."""
    cached: tuple[int, ...] | None = getattr(connection, CACHE_ATTRIBUTE, None)
    if cached is None:
        installed, _ = installed_and_available()
        cached = installed or ()
        setattr(connection, CACHE_ATTRIBUTE, cached)
    return cached


def pgvector_problem() -> str | None:
    """What stops this code from running on the database's pgvector, in
    words, or None. An extension not created yet is no problem when the
    server can create a recent one (the first migration does)."""
    installed, available = installed_and_available()
    least = _shown(MIN_PGVECTOR)
    if installed is not None and installed >= MIN_PGVECTOR:
        return None
    if available is None:
        return f"This PostgreSQL server has no pgvector extension; install pgvector {least} or newer."
    if available < MIN_PGVECTOR:
        return f"The server's pgvector is {_shown(available)}; Stock Mind needs {least} or newer: upgrade pgvector."
    if installed is not None:
        return (
            f"The database's pgvector extension is at {_shown(installed)} although the server has "
            f"{_shown(available)}; Stock Mind needs {least} or newer: run ALTER EXTENSION vector UPDATE."
        )
    return None
