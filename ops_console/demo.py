"""The demo (`make demo`, `manage.py load_demo`): its tenant, the sample
catalog uploaded through the same ingest as the API, processed by a real
worker with progress, and the searches a client would try first."""

from __future__ import annotations

import io
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


def load_sample_catalog(tenant: Tenant) -> list[UploadResult]:
    """The sample products and their photos and clip, uploaded as a client
    would; samples already there are found, not added again."""
    results = []
    for sample in SAMPLE_PRODUCTS:
        product, _ = Product.objects.get_or_create(
            tenant=tenant,
            sku=sample.sku,
            defaults={"title": sample.title, "category": sample.category, "attributes": {"shape": sample.shape}},
        )
        for variant in range(IMAGES_PER_PRODUCT):
            data = product_image(sample, variant)
            results.append(
                ingest_upload(tenant, io.BytesIO(data), len(data), f"{sample.sku.lower()}-{variant}.jpg", product)
            )
    featured = SAMPLE_PRODUCTS[0]
    video = product_video(featured)
    product = Product.objects.get(tenant=tenant, sku=featured.sku)
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
