"""One HNSW index per large tenant: a partial index over that tenant's vectors
of the model searches read; and beside it a GIN index over the same rows'
attributes (search/indexes.py), for its attribute filters.

An index over every tenant's vectors would make an iterative scan filtered by
tenant walk past the other tenants' neighbours (a tenant with 1% of the table
reads about a hundred tuples for each of its own), and every insert would go
into two graphs (catalog migration 0011 dropped it). An index
`WHERE tenant_id = <id> AND model_name = '<model>'` holds nothing else, so a
scan with the tenant's `ef_search` is enough. The planner picks it because
the query's tenant and model reach it as constants (Django binds parameters on
the client); tests/test_tenant_indexes.py checks the plan. A tenant waiting
for its index is scanned exactly, and its search asks for a sync of its
indexes at once (search/query.py).

Which tenants have one follows the data, so migrations do not create them:
`sync` (a Celery beat task and `manage.py reindex`) creates the missing ones,
drops those of a tenant that shrank, of a model no longer searched or of a
tenant gone, and rebuilds any left invalid by an interrupted build or built with
other parameters (beside the old one, which serves until the new one takes its
name). Builds and drops run CONCURRENTLY: searches and writes go on meanwhile.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from catalog.models import EMBEDDING_TABLE
from media_pipeline.embedder import current_model_name
from search import indexes, query
from search.indexes import TENANT_INDEX_EF_CONSTRUCTION, TENANT_INDEX_M, IndexKind, tenant_index_name

logger = logging.getLogger(__name__)

# A tenant above query.EXACT_SCAN_MAX_VECTORS gets an index; it keeps it until
# it falls below this fraction of that, so that a tenant near the line does not
# have its index dropped and rebuilt over and over.
KEEP_ABOVE_SHARE_OF_EXACT_MAX = 0.5
# One sync at a time across processes (beat, a command): two would build the
# same index twice.
ADVISORY_LOCK_KEY = 0x57_0C_1D_E5

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TenantIndex:
    name: str
    tenant_id: int
    model_name: str
    vectors: int
    replaces: bool = False  # an invalid or outdated index of that name, until this one is built
    kind: IndexKind = IndexKind.HNSW


@dataclass
class SyncPlan:
    create: list[TenantIndex] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    kept: int = 0


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: int = 0
    skipped: bool = False  # another sync held the lock
    build_seconds: dict[str, float] = field(default_factory=dict)


def existing() -> dict[str, bool]:
    """The tenant indexes on the embedding table (both kinds), each with
    whether it can stay: valid (a CONCURRENTLY build that failed leaves an
    invalid index behind) and built as this release builds it, an HNSW one
    with the current parameters and over halfvec (an index from before is
    rebuilt by the next sync: that is the whole migration)."""
    current = {f"m={TENANT_INDEX_M}", f"ef_construction={TENANT_INDEX_EF_CONSTRUCTION}"}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid, c.reloptions, o.opcname"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_opclass o ON o.oid = i.indclass[0]"
            " WHERE i.indrelid = %s::regclass AND c.relname LIKE ANY(%s)",
            [EMBEDDING_TABLE, [kind.value.replace("_", r"\_") + "%" for kind in IndexKind]],
        )
        rows = cursor.fetchall()
    return {
        name: valid
        and opclass == IndexKind.of(name).opclass
        and (IndexKind.of(name) is not IndexKind.HNSW or set(options or []) == current)
        for name, valid, options, opclass in rows
    }


def _keep_from() -> int:
    return int(query.EXACT_SCAN_MAX_VECTORS * KEEP_ABOVE_SHARE_OF_EXACT_MAX)


def _vector_counts(model_names: list[str], tenant_id: int | None) -> dict[tuple[int, str], int]:
    """Vectors per (tenant, model), for those with enough to keep an index."""
    # One pass over the table (or over one tenant's rows).
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tenant_id, model_name, count(*) FROM {EMBEDDING_TABLE}"  # noqa: S608 - a constant
            " WHERE model_name = ANY(%(models)s) AND (%(tenant)s::bigint IS NULL OR tenant_id = %(tenant)s)"
            " GROUP BY tenant_id, model_name HAVING count(*) >= %(at_least)s",
            {"models": model_names, "tenant": tenant_id, "at_least": _keep_from()},
        )
        return {(tenant, model): count for tenant, model, count in cursor.fetchall()}


def plan(model_names: list[str] | None = None, tenant_id: int | None = None) -> SyncPlan:
    """What `sync` would do now: indexes to build (smallest tenant first: the
    most tenants served soonest) and indexes to drop."""
    model_names = model_names or [current_model_name()]
    counts = _vector_counts(model_names, tenant_id)
    usable = existing()
    if tenant_id is not None:
        usable = {
            name: ok
            for name, ok in usable.items()
            if any(name.startswith(f"{kind.value}{tenant_id}_") for kind in IndexKind)
        }
    keep = {
        tenant_index_name(tenant, model, kind): (tenant, model, count, kind)
        for (tenant, model), count in counts.items()
        for kind in IndexKind
    }
    result = SyncPlan()
    for name, (tenant, model, count, kind) in sorted(keep.items(), key=lambda item: item[1][2]):
        # A tenant's attributes index goes with its HNSW index, kept too in
        # the band where that one is kept but would not be built.
        with_hnsw = kind is not IndexKind.HNSW and usable.get(tenant_index_name(tenant, model))
        if usable.get(name):
            result.kept += 1
        elif count > query.EXACT_SCAN_MAX_VECTORS or with_hnsw:
            result.create.append(TenantIndex(name, tenant, model, count, replaces=name in usable, kind=kind))
    rebuilt = {index.name for index in result.create}
    result.drop = sorted(name for name in usable if name not in rebuilt and not (name in keep and usable[name]))
    return result


# A replacement is built under the first suffix beside the index it replaces,
# which serves the tenant's searches until the two swap names (at once, in one
# transaction); the old one is dropped under the second.
BUILDING_SUFFIX = "_new"
REPLACED_SUFFIX = "_old"


def build_statements(index: TenantIndex) -> list[str]:
    """The statements that build the index; one that replaces another is
    built beside it, then takes its name (a leftover of an interrupted
    replacement is dropped first, and by the next sync otherwise: its name is
    no tenant index's)."""

    def create(name: str) -> str:
        return indexes.build_statement(index.kind, name, tenant_id=index.tenant_id, model_name=index.model_name)

    if not index.replaces:
        return [create(index.name)]
    building, replaced = index.name + BUILDING_SUFFIX, index.name + REPLACED_SUFFIX
    return [
        indexes.drop_statement(building),
        indexes.drop_statement(replaced),
        create(building),
        # A DO block is one transaction; renaming an index blocks neither reads nor writes.
        f"DO $$ BEGIN ALTER INDEX {index.name} RENAME TO {replaced};"
        f" ALTER INDEX {building} RENAME TO {index.name}; END $$",
        indexes.drop_statement(replaced),
    ]


def statements(sync_plan: SyncPlan) -> list[str]:
    result = [indexes.drop_statement(name) for name in sync_plan.drop]
    for index in sync_plan.create:
        result += build_statements(index)
    return result


def sync(
    *,
    model_names: list[str] | None = None,
    tenant_id: int | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> SyncResult:
    """Build the missing tenant indexes and drop the obsolete ones (of all
    tenants, or of one); with `rebuild`, then rebuild the kept ones in place
    (REINDEX CONCURRENTLY: for an index bloated by many deletions and updates).
    Runs outside a transaction, as CONCURRENTLY needs; a sync already running
    elsewhere makes this one a no-op."""
    say = progress or logger.info
    indexes.ensure_outside_transaction()
    result = SyncResult()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        if not cursor.fetchone()[0]:
            say("Another sync of the tenant indexes is running: nothing done.")
            result.skipped = True
            return result
        try:
            todo = plan(model_names, tenant_id)
            result.kept = todo.kept
            steps = len(todo.drop) + len(todo.create)
            for number, name in enumerate(todo.drop, 1):
                say(f"[{number}/{steps}] dropping {name}")
                cursor.execute(indexes.drop_statement(name))
                result.dropped.append(name)
            if todo.create and settings.SEARCH_INDEX_BUILD_MEMORY:
                # A build whose graph outgrows maintenance_work_mem goes on on
                # disk, about 4 times slower (bench/vector_search.py).
                cursor.execute("SET maintenance_work_mem = %s", [settings.SEARCH_INDEX_BUILD_MEMORY])
            for number, index in enumerate(todo.create, len(todo.drop) + 1):
                say(f"[{number}/{steps}] building {index.name} (tenant {index.tenant_id}, {index.vectors:,} vectors)")
                started = time.perf_counter()
                for statement in build_statements(index):
                    cursor.execute(statement)
                result.build_seconds[index.name] = time.perf_counter() - started
                say(f"[{number}/{steps}] built {index.name} in {result.build_seconds[index.name]:.1f} s")
                result.created.append(index.name)
            if rebuild:
                kept = [name for name in own_indexes(tenant_id) if name not in set(result.created)]
                indexes.run([indexes.reindex_statement(name) for name in kept], say)
            if result.created:
                # Fresh statistics: with a stale row estimate for the tenant, the
                # planner may prefer sorting its rows to the new index.
                cursor.execute(f"ANALYZE {EMBEDDING_TABLE}")
        finally:
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
    return result


def own_indexes(tenant_id: int | None = None) -> list[str]:
    """The tenant indexes that exist now (of one tenant, or all), by the names
    searches look for: not a replacement being built or a leftover."""
    kinds = "|".join(re.escape(kind.value) for kind in IndexKind)
    pattern = re.compile(rf"({kinds}){tenant_id if tenant_id is not None else '[0-9]+'}_[0-9a-f]{{8}}")
    return [name for name in sorted(existing()) if pattern.fullmatch(name)]


def planned_statements(tenant_id: int | None = None, *, rebuild: bool = False) -> tuple[SyncPlan, list[str]]:
    """What `sync` would run now (of every tenant's indexes, or of one's), and
    with `rebuild` what it adds: the kept indexes rebuilt in place."""
    todo = plan(tenant_id=tenant_id)
    result = statements(todo)
    if rebuild:
        fresh = {index.name for index in todo.create} | set(todo.drop)
        result += [indexes.reindex_statement(name) for name in own_indexes(tenant_id) if name not in fresh]
    return todo, result
