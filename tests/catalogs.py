"""Generated catalogs for the recognizer: products whose media vectors cluster
around a direction of their own, as CLIP vectors of photos of one product do."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from catalog.models import EMBEDDING_DIMENSIONS, Embedding, Media, Product, Tenant
from tests.factories import MediaFactory, ProductFactory, VideoFrameFactory

MODEL_NAME = "clip-tiny"  # the name the suite's tiny model stores vectors under


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


@dataclass
class Catalog:
    products: list[Product]
    centres: np.ndarray  # one unit direction per product
    media: list[Media] = field(default_factory=list)

    def vector_near(self, product_index: int, rng: np.random.Generator, noise: float) -> np.ndarray:
        return unit(
            self.centres[product_index]
            + noise * rng.standard_normal(EMBEDDING_DIMENSIONS) / np.sqrt(EMBEDDING_DIMENSIONS)
        )


def embed(media: Media, vectors: list[np.ndarray], model_name: str = MODEL_NAME) -> None:
    """Ready vectors for `media`: one for an image, one per frame for a video."""
    if media.kind == Media.Kind.IMAGE:
        Embedding.objects.create(
            tenant=media.tenant, media=media, product=media.product, model_name=model_name, vector=vectors[0]
        )
        return
    for index, vector in enumerate(vectors):
        frame = VideoFrameFactory(media=media, index=index)
        Embedding.objects.create(
            tenant=media.tenant, media=media, frame=frame, product=media.product, model_name=model_name, vector=vector
        )


def generated_catalog(
    tenant: Tenant,
    products: int = 20,
    media_per_product: int = 6,
    noise: float = 1.0,
    videos_per_product: int = 1,
    frames_per_video: int = 4,
    seed: int = 7,
    sku_prefix: str = "GEN",
) -> Catalog:
    """`products` products, each with `media_per_product` ready media (of which
    `videos_per_product` are videos) whose vectors lie around the product's
    direction; `noise` is the spread relative to the distance between products."""
    rng = np.random.default_rng(seed)
    catalog = Catalog(
        products=[ProductFactory(tenant=tenant, sku=f"{sku_prefix}-{i:03d}") for i in range(products)],
        centres=np.array([unit(rng.standard_normal(EMBEDDING_DIMENSIONS)) for _ in range(products)]),
    )
    for index, product in enumerate(catalog.products):
        for number in range(media_per_product):
            video = number < videos_per_product
            media = MediaFactory(
                tenant=tenant,
                product=product,
                kind=Media.Kind.VIDEO if video else Media.Kind.IMAGE,
                status=Media.Status.READY,
            )
            # A video's frames are close to each other: one shot of the product.
            shot = catalog.vector_near(index, rng, noise)
            count = frames_per_video if video else 1
            embed(media, [unit(shot + 0.1 * rng.standard_normal(EMBEDDING_DIMENSIONS) / 22) for _ in range(count)])
            catalog.media.append(media)
    return catalog


def unassigned(tenant: Tenant, vector: np.ndarray) -> Media:
    media = MediaFactory(tenant=tenant, product=None, status=Media.Status.READY)
    embed(media, [vector])
    return media


def bulk_catalog(
    tenant: Tenant, vectors: np.ndarray, model_name: str = MODEL_NAME, titles: list[str] | None = None
) -> list[Media]:
    """One product with one ready image per vector, written in bulk (a
    thousand in about a second): the image's vector is the row's."""
    products = Product.objects.bulk_create(
        ProductFactory.build(tenant=tenant, sku=f"{tenant.slug}-{n}", title=titles[n] if titles else f"Item {n}")
        for n in range(len(vectors))
    )
    media = Media.objects.bulk_create(
        MediaFactory.build(tenant=tenant, product=product, storage_key=f"bulk/{tenant.slug}/{n}", sha256="")
        for n, product in enumerate(products)
    )
    Embedding.objects.bulk_create(
        Embedding(tenant=tenant, media=m, product=m.product, model_name=model_name, vector=v)
        for m, v in zip(media, vectors, strict=True)
    )
    return media
