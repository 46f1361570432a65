"""Keyword search over a tenant's products, and its fusion with the CLIP
ranking (API.md, Search v2: `/search/text`'s `mode`).

Keywords are matched by PostgreSQL full-text search over each product's
`search_document` (catalog migration 0014: title, sku, category and
attribute values, accents folded, the `english` configuration), through its
GIN index. A product matches when it holds any of the query's words; matches
rank in tiers: the product whose sku is the query (as typed, or in upper
case) first, then those with every word in the title, then every word
anywhere, then the rest, each tier by `ts_rank_cd` (title words weigh most). Each product
is shown by one of its media: its first image, else its first video frame;
a product without vectors is not a result.

`hybrid` fuses the two rankings by reciprocal rank fusion: a product scores
sum(1 / (RRF_K + rank)) over the rankings that hold it among their first
FUSION_DEPTH, and those follow best first; after them come the rest of the
vector ranking in its order. Both parts are fixed by the first FUSION_DEPTH of
each ranking, so the pages of a hybrid search are slices of one ranking too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from catalog.models import EMBEDDING_TABLE
from config.replicas import reading_connection
from search import filters
from search.filters import ProductFilter
from search.query import Hit

# Reciprocal rank fusion's constant (Cormack et al., 2009): it keeps one
# list's first place from outweighing good places in both.
RRF_K = 60
# How deep each ranking enters the fusion: the first page of a hybrid search
# reads the vector ranking this deep (bench/search_api.py measures it).
FUSION_DEPTH = 100
MATCHED_VECTOR = "vector"
MATCHED_KEYWORD = "keyword"
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Ranked:
    """One result of a text search: `score` is the cosine similarity of the
    vector ranking, None for a keyword-only match."""

    media_id: int
    frame_id: int | None
    product_id: int | None
    score: float | None
    matched: tuple[str, ...]


def _key(product_id: int | None, media_id: int) -> int:
    return product_id if product_id is not None else -media_id


def rank_keywords(
    text: str, *, tenant_id: int, model_name: str, depth: int, product_filter: ProductFilter | None = None
) -> list[Ranked]:
    """The `depth` products best matching `text`'s words, best first."""
    words = _WORD.findall(text)
    if not words:
        return []
    conditions, params = filters.product_sql(product_filter or ProductFilter())
    where = "".join(f" AND {condition}" for condition in conditions)
    # websearch_to_tsquery reads "or" between words as OR: any word matches.
    # The tiers holding every word are ranked first; those holding only some
    # are ranked only when the first fall short of `depth` (for a common
    # word, ranking every product holding any of the words costs the most).
    # Each product's media is looked up for the ranked ones only.
    params.update(text=text.strip(), every=text, any=" or ".join(words), tenant=tenant_id, model=model_name)
    rows = _ranked(_EVERY_WORD, where, {**params, "depth": depth})
    if len(rows) < depth:
        rows += _ranked(_SOME_WORDS, where, {**params, "depth": depth - len(rows)})
    return [Ranked(media_id, frame_id, product_id, None, (MATCHED_KEYWORD,)) for media_id, frame_id, product_id in rows]


# The tiers: (the tier of a row, its weight within the tier, which products).
_EVERY_WORD = (
    "CASE WHEN p.sku IN (%(text)s, upper(%(text)s)) THEN 0"
    " WHEN ts_filter(p.search_document, '{a}') @@ q.every THEN 1 ELSE 2 END",
    "ts_rank_cd(p.search_document, q.every)",
    "(p.search_document @@ q.every OR p.sku IN (%(text)s, upper(%(text)s)))",
)
_SOME_WORDS = (
    "3",
    "ts_rank_cd(p.search_document, q.any)",
    "p.search_document @@ q.any AND NOT p.search_document @@ q.every AND p.sku NOT IN (%(text)s, upper(%(text)s))",
)


def _ranked(tier: tuple[str, str, str], where: str, params: dict) -> list[tuple]:
    """(media id, frame id, product id) of the `depth` best products of one
    tier, each shown by its first image (else its first video frame)."""
    level, weight, matches = tier
    sql = f"""
        WITH q AS MATERIALIZED (
            SELECT plainto_tsquery('english', stockmind_fold(%(every)s)) AS every,
                   websearch_to_tsquery('english', stockmind_fold(%(any)s)) AS any
        ), ranked AS (
            SELECT p.id, {level} AS level, {weight} AS weight
            FROM catalog_product p CROSS JOIN q
            WHERE p.tenant_id = %(tenant)s AND {matches}{where} AND EXISTS (
                SELECT 1 FROM {EMBEDDING_TABLE} e
                WHERE e.tenant_id = %(tenant)s AND e.product_id = p.id AND e.model_name = %(model)s
            )
            ORDER BY 2, 3 DESC, p.id
            LIMIT %(depth)s
        )
        SELECT shown.media_id, shown.frame_id, ranked.id
        FROM ranked CROSS JOIN LATERAL (
            SELECT e.media_id, e.frame_id FROM {EMBEDDING_TABLE} e
            WHERE e.tenant_id = %(tenant)s AND e.product_id = ranked.id AND e.model_name = %(model)s
            ORDER BY e.frame_id IS NOT NULL, e.media_id, e.frame_id
            LIMIT 1
        ) shown
        ORDER BY ranked.level, ranked.weight DESC, ranked.id
    """  # noqa: S608 - the tiers and `where` are constants; values are parameters
    with reading_connection().cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def vector_ranked(hits: Sequence[Hit]) -> list[Ranked]:
    return [Ranked(h.media_id, h.frame_id, h.product_id, h.score, (MATCHED_VECTOR,)) for h in hits]


def vector_depth(ranked: int) -> int:
    """How deep the vector ranking is read for a hybrid ranking `ranked` deep:
    its first FUSION_DEPTH, and past those as many as the page needs beside the
    keyword matches already placed (at most FUSION_DEPTH of them)."""
    return FUSION_DEPTH if ranked <= FUSION_DEPTH else ranked + FUSION_DEPTH


def fuse(vector: Sequence[Hit], keyword: Sequence[Ranked]) -> list[Ranked]:
    """The hybrid ranking (module docstring): `vector` read vector_depth() deep,
    `keyword` FUSION_DEPTH deep."""
    entries: dict[int, Ranked] = {}
    scores: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    for hit_rank, hit in enumerate(vector_ranked(vector[:FUSION_DEPTH]), start=1):
        key = _key(hit.product_id, hit.media_id)
        entries[key] = hit
        scores[key] = 1.0 / (RRF_K + hit_rank)
        best_rank[key] = hit_rank
    for match_rank, match in enumerate(keyword[:FUSION_DEPTH], start=1):
        key = _key(match.product_id, match.media_id)
        both = key in entries
        entries[key] = replace(entries[key], matched=(MATCHED_VECTOR, MATCHED_KEYWORD)) if both else match
        scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + match_rank)
        best_rank[key] = min(best_rank.get(key, match_rank), match_rank)
    fused = sorted(entries, key=lambda key: (-scores[key], best_rank[key], key))
    rest = [hit for hit in vector[FUSION_DEPTH:] if _key(hit.product_id, hit.media_id) not in entries]
    return [entries[key] for key in fused] + vector_ranked(rest)
