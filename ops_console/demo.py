"""The demo (`make demo`, `manage.py load_demo`): its tenant, the sample
catalog (products through POST /api/v1/products/bulk, media through the same
ingest as the API, with two copies of one photo among them), processed by a
real worker with progress, what it found duplicated, and the searches a
client would try first."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.db.models import Count
from PIL import Image

from catalog import transitions
from catalog.models import Media, Product, Tenant
from catalog.tenants import create_tenant
from config.celery import worker_argv
from config.queues import QUEUES
from media_pipeline.uploads import UploadResult, ingest_upload
from ops_console.demo_media import IMAGES_PER_PRODUCT, SAMPLE_PRODUCTS, product_image, product_video
from search import service

DEMO_TENANT = "demo"
# The tiny random model scores unrelated pictures 0.95 alike on average, where
# real CLIP weights keep the default (0.95) meaningful; the demo tenant starts
# with a threshold on the tiny model's scale, editable in the admin.
DEMO_NEAR_DUPLICATE_SIMILARITY = 0.995
INGEST_TIMEOUT_S = 600
POLL_INTERVAL_S = 0.5


class IngestFailed(RuntimeError):
    """The demo's worker stopped, or the samples took too long."""


def demo_tenant() -> Tenant:
    """The demo's tenant, created with its settings on the first run."""
    tenant = Tenant.objects.filter(slug=DEMO_TENANT).first()
    if tenant is None:
        tenant = create_tenant(
            Tenant(slug=DEMO_TENANT, name="Demo Store"), near_duplicate_similarity=DEMO_NEAR_DUPLICATE_SIMILARITY
        )
    return tenant


def load_products(api_key: str) -> dict:
    """The sample products, sent to the bulk endpoint as a client would
    (Django's own client, in process); its answer: created, updated,
    unchanged, errors."""
    from django.test import Client

    rows = [
        {"sku": sample.sku, "title": sample.title, "category": sample.category, "attributes": {"shape": sample.shape}}
        for sample in SAMPLE_PRODUCTS
    ]
    response = Client(HTTP_HOST="127.0.0.1").post(
        "/api/v1/products/bulk",
        data=json.dumps(rows),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
    )
    if response.status_code != 200:
        raise IngestFailed(f"The bulk endpoint answered {response.status_code}: {response.content[:500]!r}")
    answer = response.json()
    if answer["errors"]:
        raise IngestFailed(f"The bulk endpoint refused sample products: {answer['errors']}")
    return answer


# The copies of one sample photo the demo uploads besides it.
COPY_NAMES = ("small", "cropped")


def copies_of(photo: bytes) -> dict[str, bytes]:
    """Two copies of a photo as a client might upload them again: re-encoded
    smaller, and cropped. The duplicate check links them to it as near-identical."""
    image = Image.open(io.BytesIO(photo))
    w, h = image.size
    smaller, cropped = io.BytesIO(), io.BytesIO()
    image.resize((w // 2, h // 2)).save(smaller, format="JPEG", quality=60)
    image.crop((w // 20, h // 20, w - w // 20, h - h // 20)).save(cropped, format="JPEG", quality=85)
    return dict(zip(COPY_NAMES, (smaller.getvalue(), cropped.getvalue()), strict=True))


def load_sample_catalog(tenant: Tenant) -> list[UploadResult]:
    """The sample photos and clip of the products (load_products first),
    uploaded as a client would; samples already there are found, not added
    again."""
    products = {product.sku: product for product in Product.objects.filter(tenant=tenant)}
    results = []
    for sample in SAMPLE_PRODUCTS:
        product = products[sample.sku]
        for variant in range(IMAGES_PER_PRODUCT):
            data = product_image(sample, variant)
            results.append(
                ingest_upload(tenant, io.BytesIO(data), len(data), f"{sample.sku.lower()}-{variant}.jpg", product)
            )
    featured = SAMPLE_PRODUCTS[0]
    product = products[featured.sku]
    for name, data in copies_of(product_image(featured, 0)).items():
        results.append(
            ingest_upload(tenant, io.BytesIO(data), len(data), f"{featured.sku.lower()}-{name}.jpg", product)
        )
    video = product_video(featured)
    results.append(ingest_upload(tenant, io.BytesIO(video), len(video), f"{featured.sku.lower()}-360.mp4", product))
    return results


def ingest(results: list[UploadResult], report: Callable[[str], None]) -> None:
    """Process the samples through a real Celery worker, reporting progress
    lines; raises IngestFailed. New samples are queued already; those of an
    earlier run that never became ready go through again."""
    earlier = [result.media.pk for result in results if not result.created]
    transitions.requeue(Media.objects.filter(pk__in=earlier).exclude(status=Media.Status.READY))
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        worker_argv(list(QUEUES), loglevel="WARNING"), env=os.environ.copy(), start_new_session=True
    )
    report(f"Ingesting {len(results)} media through a Celery worker (pid {worker.pid})...")
    try:
        _wait([result.media.pk for result in results], worker, report)
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: finishes the task in hand
        worker.wait(timeout=60)


def _wait(media_ids: list[int], worker: subprocess.Popen, report: Callable[[str], None]) -> None:
    deadline, last = time.monotonic() + INGEST_TIMEOUT_S, None
    while True:
        counts = dict(Media.objects.filter(pk__in=media_ids).values_list("status").annotate(n=Count("pk")))
        ready, failed = counts.get(Media.Status.READY, 0), counts.get(Media.Status.FAILED, 0)
        line = (
            f"  {ready + failed}/{len(media_ids)} processed: {ready} ready, {failed} failed, "
            f"{counts.get(Media.Status.PROCESSING, 0)} processing, {counts.get(Media.Status.PENDING, 0)} waiting"
        )
        if line != last:
            report(line)
            last = line
        if ready + failed == len(media_ids):
            return
        if worker.poll() is not None:
            raise IngestFailed(f"The worker stopped (exit code {worker.returncode}); see its output above.")
        if time.monotonic() > deadline:
            raise IngestFailed(f"Ingest did not finish within {INGEST_TIMEOUT_S} s.")
        time.sleep(POLL_INTERVAL_S)


@dataclass(frozen=True)
class SampleSearch:
    title: str
    found: service.SearchResponse


def sample_searches(tenant: Tenant) -> list[SampleSearch]:
    """One image, one text and one 'more like this' search, as a client would
    send them: a sample photo cropped and recompressed, a sample's title, the
    demo's video."""
    sample = SAMPLE_PRODUCTS[1]
    photo = Image.open(io.BytesIO(product_image(sample, 0)))
    w, h = photo.size
    altered = io.BytesIO()
    photo.crop((w // 10, h // 10, w - w // 10, h - h // 10)).save(altered, format="JPEG", quality=60)
    size = altered.getbuffer().nbytes
    queries: list[tuple[str, np.ndarray, int | None]] = [
        (f"image: a photo of {sample.sku}, cropped and recompressed", service.image_vector(altered, size), None),
        ("text: 'red suede sneaker'", service.text_vector("red suede sneaker"), None),
    ]
    video = Media.objects.ready().filter(tenant=tenant, kind=Media.Kind.VIDEO).first()
    if video is not None:
        queries.append((f"similar to video media {video.pk}", service.media_vector(video), video.pk))
    return [
        SampleSearch(
            title,
            service.search(
                tenant, vector, service.Options(k=5, min_score=0.0, exclude_media_ids=(exclude,) if exclude else ())
            ),
        )
        for title, vector, exclude in queries
    ]
