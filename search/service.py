"""Searches as clients see them: a query turned into a vector, the nearest
products of the tenant, and what a result shows of each."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import IO

import numpy as np
from django.conf import settings
from django.db import models

from catalog.models import Media, Product, Tenant, TenantSettings, VideoFrame
from config.replicas import release_connections, search_read
from media_pipeline.embedder import current_model_name, get_embedder
from media_pipeline.images import load_image
from media_pipeline.probe import probe
from search import keywords, search_log, vectors
from search.boxes import Box
from search.filters import ProductFilter
from search.keywords import Ranked
from search.models import SearchLog
from search.query import MAX_RANKED, Hit, SearchResult, nearest_products, next_page, rank_products
from search.search_log import Logged


@dataclass(frozen=True)
class ResultEntry:
    product: Product | None
    score: float | None  # None: a keyword-only match
    media: Media
    frame: VideoFrame | None
    matched: tuple[str, ...] | None = None  # text searches: which rankings found it


@dataclass(frozen=True)
class SearchResponse:
    results: list[ResultEntry]
    took_ms: float
    model: str
    strategy: str
    next_offset: int | None = None
    search_id: str | None = None


class TextMode(models.TextChoices):
    """API.md's `mode` of a text search (search/keywords.py)."""

    HYBRID = "hybrid"
    VECTOR = "vector"
    KEYWORD = "keyword"


@dataclass(frozen=True)
class Options:
    """What every search takes besides its query (API.md, Search v2)."""

    k: int = 10
    offset: int = 0
    min_score: float | None = None
    cutoff: str | None = None  # catalog.models.SearchCutoff; None: the tenant's
    product_filter: ProductFilter | None = None
    exclude_media_ids: tuple[int, ...] = ()


def image_vector(file: IO[bytes], size: int, box: Box | None = None) -> np.ndarray:
    """A query photo, checked with the search limits, as a unit vector: of
    the region `box` only, when given (fractions of the upright photo)."""
    probe(file, size, max_bytes=settings.MAX_SEARCH_IMAGE_BYTES, images_only=True)
    # A box is a part of the photo: decoded larger, so that the part keeps
    # the model's input size.
    min_side = None if box is None else math.ceil(settings.IMAGE_DRAFT_MIN_SIDE / min(box.width, box.height))
    image, _ = load_image(file, min_side=min_side)
    if box is not None:
        image = box.crop(image)
    release_connections()  # the forward pass waits its turn on the model: others use the connection meanwhile
    return get_embedder().embed_images([image])[0]


def text_vector(text: str) -> np.ndarray:
    release_connections()
    return text_vector_later(text).result()[0]


def text_vector_later(text: str) -> Future[np.ndarray]:
    """The query's unit vector (as a 1 x 512 array), embedded on the model's
    thread while the caller goes on."""
    return get_embedder().embed_texts_later([text])


def media_vector(media: Media) -> np.ndarray:
    """An item's own vector: the image's, or the mean direction of a video's frames."""
    return vectors.media_vector(media, current_model_name())


def recommendation_vector(positive: list[Media], negative: list[Media]) -> np.ndarray:
    return vectors.recommendation_vector(positive, negative, current_model_name())


def search(tenant: Tenant, vector: np.ndarray, options: Options, logged: Logged | None = None) -> SearchResponse:
    """The page of products nearest to `vector`; logged as `logged` says (None: not)."""
    model_name = current_model_name()
    tenant_settings = TenantSettings.of(tenant)  # from the primary: it may store the defaults

    def read() -> tuple[SearchResult, list[ResultEntry]]:
        found = nearest_products(
            vector,
            tenant_id=tenant.pk,
            model_name=model_name,
            k=options.k,
            offset=options.offset,
            min_score=options.min_score,
            relative_cutoff=tenant_settings.cutoff_gap(options.cutoff),
            product_filter=options.product_filter,
            exclude_media_ids=options.exclude_media_ids,
            tenant_settings=tenant_settings,
        )
        return found, _entries(tenant, [(hit, None) for hit in found.hits])

    found, results = search_read(read)
    best_below = _best_below_minimum(tenant, tenant_settings, vector, options, logged, results, model_name)
    return _respond(
        tenant, options, logged, results, found.took_ms, model_name, found.strategy, found.next_offset, best_below
    )


def text_search(tenant: Tenant, text: str, mode: str, options: Options, *, log: bool = True) -> SearchResponse:
    """A text search in `mode` (TextMode): CLIP's ranking, the keywords', or
    both fused; logged unless `log` is false (the console's playground)."""
    model_name = current_model_name()
    tenant_settings = TenantSettings.of(tenant)
    offset = max(0, min(options.offset, MAX_RANKED - options.k))
    ranked = offset + options.k + 1  # one more than the page: whether there is a next one
    # The model embeds the query on its thread while this one ranks the keywords.
    embedding = text_vector_later(text) if mode != TextMode.KEYWORD else None
    waited = 0.0  # on the forward pass once the keywords were ranked

    def query_vector(embedding: Future[np.ndarray]) -> np.ndarray:
        nonlocal waited
        started = time.perf_counter()
        if not embedding.done():
            release_connections()  # other requests use the connection meanwhile
        vector = embedding.result()[0]
        waited += time.perf_counter() - started
        return vector

    def read() -> tuple[list[Ranked], str]:
        matches = []
        if mode != TextMode.VECTOR:
            matches = keywords.rank_keywords(
                text,
                tenant_id=tenant.pk,
                model_name=model_name,
                depth=ranked if mode == TextMode.KEYWORD else keywords.FUSION_DEPTH,
                product_filter=options.product_filter,
            )
        if embedding is None:
            return matches, "keyword"
        ranking = rank_products(
            query_vector(embedding),
            tenant_id=tenant.pk,
            model_name=model_name,
            depth=ranked if mode == TextMode.VECTOR else keywords.vector_depth(ranked),
            page_size=options.k,
            min_score=options.min_score,
            relative_cutoff=tenant_settings.cutoff_gap(options.cutoff),
            product_filter=options.product_filter,
            tenant_settings=tenant_settings,
        )
        if mode == TextMode.VECTOR:
            return keywords.vector_ranked(ranking.hits), ranking.strategy
        return keywords.fuse(ranking.hits, matches), f"{ranking.strategy}+keyword"

    def read_page() -> tuple[tuple[list[Ranked], str], list[ResultEntry]]:
        ranking, strategy = read()
        page = ranking[offset : offset + options.k]
        hits = [(Hit(r.media_id, r.frame_id, r.product_id, r.score if r.score is not None else 0.0), r) for r in page]
        return (ranking, strategy), _entries(tenant, hits)

    started = time.perf_counter()  # took_ms: the search's, as the other searches' (not the forward pass)
    (ranking, strategy), results = search_read(read_page)
    next_offset = next_page(offset, options.k, len(ranking))
    took_ms = (time.perf_counter() - started - waited) * 1000
    vector = embedding.result()[0] if embedding is not None else None
    logged = Logged(SearchLog.Kind.TEXT, mode=mode, query_text=text) if log else None
    options = replace(options, offset=offset)
    best_below = _best_below_minimum(tenant, tenant_settings, vector, options, logged, results, model_name)
    return _respond(tenant, options, logged, results, took_ms, model_name, strategy, next_offset, best_below)


def _best_below_minimum(
    tenant: Tenant,
    tenant_settings: TenantSettings,
    vector: np.ndarray | None,
    options: Options,
    logged: Logged | None,
    results: list[ResultEntry],
    model_name: str,
) -> float | None:
    """For a logged first page with no vector match: the score of the best
    item the minimum score left out (the analytics' histogram shows where it
    fell short). One more ranking, of depth 1 and no minimum; None when the
    search is not logged, found something, or the tenant has nothing."""
    if logged is None or vector is None or options.offset or any(r.score is not None for r in results):
        return None

    def read() -> list[Hit]:
        return rank_products(
            vector,
            tenant_id=tenant.pk,
            model_name=model_name,
            depth=1,
            page_size=1,
            min_score=-1.0,
            product_filter=options.product_filter,
            exclude_media_ids=options.exclude_media_ids,
            tenant_settings=tenant_settings,
        ).hits

    hits = search_read(read)
    return hits[0].score if hits else None


def _respond(
    tenant: Tenant,
    options: Options,
    logged: Logged | None,
    results: list[ResultEntry],
    took_ms: float,
    model_name: str,
    strategy: str,
    next_offset: int | None,
    best_below_minimum: float | None = None,
) -> SearchResponse:
    search_id: str | None = None
    if logged is not None:
        search_id = str(
            search_log.record(
                tenant,
                logged,
                product_filter=options.product_filter,
                k=options.k,
                offset=options.offset,
                scores=[result.score for result in results],
                took_ms=took_ms,
                strategy=strategy,
                best_below_minimum=best_below_minimum,
            )
        )
    return SearchResponse(results, round(took_ms, 2), model_name, strategy, next_offset, search_id)


def _entries(tenant: Tenant, hits: Sequence[tuple[Hit, Ranked | None]]) -> list[ResultEntry]:
    """Results for the hits (a text search's with what matched each)."""
    media = Media.objects.filter(tenant=tenant).select_related("product").in_bulk([h.media_id for h, _ in hits])
    frames = VideoFrame.objects.filter(tenant=tenant).in_bulk([h.frame_id for h, _ in hits if h.frame_id])
    return [
        ResultEntry(
            product=media[hit.media_id].product,
            score=None if ranked is not None and ranked.score is None else round(min(1.0, max(0.0, hit.score)), 6),
            media=media[hit.media_id],
            frame=frames.get(hit.frame_id) if hit.frame_id else None,
            matched=ranked.matched if ranked is not None else None,
        )
        for hit, ranked in hits
        if hit.media_id in media  # deleted between the two queries
    ]
