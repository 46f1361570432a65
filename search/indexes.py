"""Each large tenant's own indexes over its vectors (search/tenant_indexes.py):
an HNSW index (there is none over every tenant's, catalog migration 0011)
and a GIN index over the rows' attributes. Their names, the statements that
build, rebuild and drop them, and running those statements outside a
transaction, as CONCURRENTLY requires."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from enum import StrEnum

from django.db import connection

from catalog.models import EMBEDDING_TABLE, HALFVEC, HALFVEC_VECTOR

TENANT_INDEX_PREFIX = "embedding_hnsw_t"
# Build parameters of a tenant's own index. Photos cluster by subject, and on
# clustered vectors an HNSW graph built with ef_construction 64 can leave a
# cluster badly linked: a query landing there finds few of its true neighbours
# (recall@10 0.92 to 0.99 from one build to the next on a 100,000-vector tenant,
# some queries 0). 128 links the graph better (0.997, none below 0.9, at
# ef_search 100; bench/vector_search.py) for a build about 1.7 times longer.
# A change here rebuilds every tenant index at the next sync.
TENANT_INDEX_M = 16
TENANT_INDEX_EF_CONSTRUCTION = 128
# A tenant's own index holds its vectors as halfvec (16-bit floats): half the
# size of a float32 one (more of it stays in shared_buffers), built and
# written to faster, with the same latency and recall@10 of 0.995 or more
# (bench/vector_plans.py). The rows keep float32: distances and exact scans
# use them. An index over `vector` itself counts as outdated and is rebuilt.
HALFVEC_OPCLASS = "halfvec_cosine_ops"
TENANT_INDEX_EXPRESSION = f"({HALFVEC_VECTOR}) {HALFVEC_OPCLASS}"
TENANT_INDEX_ORDER = f"e.{HALFVEC_VECTOR} <=> %(query)s::{HALFVEC}"
# A large tenant's GIN index over its rows' attributes: a search's attribute
# value (search/filters.py) finds the tenant's rows that have it without
# reading the other tenants' (one index over every tenant's rows would hold
# them all under the same key) or the tenant's other rows. Partial, as the
# HNSW index is, so that the planner knows every row of it is the tenant's
# (over all tenants' rows, it ANDs the tenant's btree entries to the value's,
# reading the whole tenant: bench/README.md). `jsonb_path_ops` answers
# containment (`@>`) only, from a hash of each value's whole path.
ATTRIBUTES_INDEX_PREFIX = "embedding_attrs_t"
ATTRIBUTES_INDEX_OPCLASS = "jsonb_path_ops"


class IndexKind(StrEnum):
    """The kinds of index each large tenant has, by the prefix of their names."""

    HNSW = TENANT_INDEX_PREFIX
    ATTRIBUTES = ATTRIBUTES_INDEX_PREFIX

    @property
    def opclass(self) -> str:
        """The operator class an index of this kind is built with (another one is outdated)."""
        return HALFVEC_OPCLASS if self is IndexKind.HNSW else ATTRIBUTES_INDEX_OPCLASS

    @classmethod
    def of(cls, name: str) -> IndexKind:
        """The kind of a tenant index by its name (tenant_indexes.existing() lists only these)."""
        return next(kind for kind in cls if name.startswith(kind.value))


Progress = Callable[[str], None]


def tenant_index_name(tenant_id: int, model_name: str, kind: IndexKind = IndexKind.HNSW) -> str:
    """The name of the HNSW index (or of another kind) over one tenant's
    vectors of one model: the model is hashed, as a name may hold any
    characters and an index name only 63."""
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
    return f"{kind.value}{tenant_id}_{digest}"


def attributes_index_name(tenant_id: int, model_name: str) -> str:
    return tenant_index_name(tenant_id, model_name, IndexKind.ATTRIBUTES)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_statement(name: str, m: int, ef_construction: int, *, tenant_id: int, model_name: str) -> str:
    """CREATE INDEX CONCURRENTLY of an HNSW cosine index named `name` over one
    tenant's vectors of `model_name`, as halfvec (TENANT_INDEX_EXPRESSION)."""
    return (
        f"CREATE INDEX CONCURRENTLY {name} ON {EMBEDDING_TABLE} USING hnsw ({TENANT_INDEX_EXPRESSION})"
        f" WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
        f" WHERE tenant_id = {int(tenant_id)} AND model_name = {_quote(model_name)}"
    )


def create_attributes_statement(name: str, *, tenant_id: int, model_name: str) -> str:
    """CREATE INDEX CONCURRENTLY of the GIN index named `name` over one
    tenant's rows' attributes (ATTRIBUTES_INDEX_PREFIX), for `model_name`'s
    rows as the tenant's HNSW index is."""
    return (
        f"CREATE INDEX CONCURRENTLY {name} ON {EMBEDDING_TABLE} USING gin (attributes {ATTRIBUTES_INDEX_OPCLASS})"
        f" WHERE tenant_id = {int(tenant_id)} AND model_name = {_quote(model_name)}"
    )


def build_statement(kind: IndexKind, name: str, *, tenant_id: int, model_name: str) -> str:
    """CREATE INDEX CONCURRENTLY of a tenant index of `kind`, as this release builds it."""
    if kind is IndexKind.ATTRIBUTES:
        return create_attributes_statement(name, tenant_id=tenant_id, model_name=model_name)
    return create_statement(
        name, TENANT_INDEX_M, TENANT_INDEX_EF_CONSTRUCTION, tenant_id=tenant_id, model_name=model_name
    )


def drop_statement(name: str) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS {name}"


def reindex_statement(name: str) -> str:
    """Rebuild an index in place without blocking searches or writes."""
    return f"REINDEX INDEX CONCURRENTLY {name}"


def ensure_outside_transaction() -> None:
    connection.ensure_connection()
    if connection.in_atomic_block or not connection.get_autocommit():
        raise RuntimeError("Indexes are built CONCURRENTLY, which cannot run inside a transaction.")


def run(statements: Sequence[str], progress: Progress | None = None) -> None:
    """Run index statements one by one, outside a transaction, saying each."""
    ensure_outside_transaction()
    with connection.cursor() as cursor:
        for number, statement in enumerate(statements, 1):
            if progress:
                progress(f"[{number}/{len(statements)}] {statement.split(' USING ')[0]}")
            cursor.execute(statement)
