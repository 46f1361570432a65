"""Searches as clients see them: a query turned into a vector, the nearest
products of the tenant, and what a result shows of each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import numpy as np
from django.conf import settings

from catalog.models import Media, Product, Tenant, TenantSettings, VideoFrame
from config.replicas import release_connections, search_read
from media_pipeline.embedder import current_model_name, get_embedder
from media_pipeline.images import load_image
from media_pipeline.probe import probe
from search import vectors
from search.filters import ProductFilter
from search.query import Hit, SearchResult, nearest_products


@dataclass(frozen=True)
class ResultEntry:
    product: Product | None
    score: float
    media: Media
    frame: VideoFrame | None


@dataclass(frozen=True)
class SearchResponse:
    results: list[ResultEntry]
    took_ms: float
    model: str
    strategy: str


def image_vector(file: IO[bytes], size: int) -> np.ndarray:
    """A query photo, checked with the search limits, as a unit vector."""
    probe(file, size, max_bytes=settings.MAX_SEARCH_IMAGE_BYTES, images_only=True)
    image, _ = load_image(file)
    release_connections()  # the forward pass waits its turn on the model: others use the connection meanwhile
    return get_embedder().embed_images([image])[0]


def text_vector(text: str) -> np.ndarray:
    release_connections()
    return get_embedder().embed_texts([text])[0]


def media_vector(media: Media) -> np.ndarray:
    """An item's own vector: the image's, or the mean direction of a video's frames."""
    return vectors.media_vector(media, current_model_name())


def search(
    tenant: Tenant,
    vector: np.ndarray,
    *,
    k: int = 10,
    min_score: float | None = None,
    product_filter: ProductFilter | None = None,
    exclude_media_id: int | None = None,
) -> SearchResponse:
    model_name = current_model_name()
    tenant_settings = TenantSettings.of(tenant)  # from the primary: it may store the defaults

    def read() -> tuple[SearchResult, list[ResultEntry]]:
        found = nearest_products(
            vector,
            tenant_id=tenant.pk,
            model_name=model_name,
            k=k,
            min_score=min_score,
            product_filter=product_filter,
            exclude_media_id=exclude_media_id,
            tenant_settings=tenant_settings,
        )
        return found, _entries(tenant, found.hits)

    found, results = search_read(read)
    return SearchResponse(results, round(found.took_ms, 2), model_name, found.strategy)


def _entries(tenant: Tenant, hits: list[Hit]) -> list[ResultEntry]:
    media = Media.objects.filter(tenant=tenant).select_related("product").in_bulk([h.media_id for h in hits])
    frames = VideoFrame.objects.filter(tenant=tenant).in_bulk([h.frame_id for h in hits if h.frame_id])
    return [
        ResultEntry(
            product=media[hit.media_id].product,
            score=round(min(1.0, max(0.0, hit.score)), 6),
            media=media[hit.media_id],
            frame=frames.get(hit.frame_id) if hit.frame_id else None,
        )
        for hit in hits
        if hit.media_id in media  # deleted between the two queries
    ]
