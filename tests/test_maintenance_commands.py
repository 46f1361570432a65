from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from catalog.models import Media
from tests.factories import MediaFactory

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def failed(tenant, reason: str, minutes_ago: int = 0) -> Media:
    return MediaFactory(
        tenant=tenant,
        status=Media.Status.FAILED,
        error=reason,
        processed_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def stuck(tenant, attempts: int = 1) -> Media:
    return MediaFactory(
        tenant=tenant,
        status=Media.Status.PROCESSING,
        claim_token="lost",
        attempts=attempts,
        processing_started_at=timezone.now() - timedelta(hours=2),
    )


def statuses(*items) -> list[str]:
    return [Media.objects.get(pk=m.pk).status for m in items]


def test_reprocess_failed_with_filters_and_dry_run(tenant, other_tenant, broker):
    old_corrupt = failed(tenant, "The image is truncated or corrupt.", minutes_ago=120)
    new_corrupt = failed(tenant, "The image is truncated or corrupt.", minutes_ago=1)
    missing = failed(tenant, "The stored file is missing.", minutes_ago=120)
    theirs = failed(other_tenant, "The image is truncated or corrupt.", minutes_ago=120)

    out = run("reprocess_failed", "--tenant", "acme", "--error-contains", "corrupt", "--older-than", "60", "--dry-run")
    assert "Would requeue 1" in out
    assert statuses(old_corrupt, new_corrupt, missing, theirs) == ["failed"] * 4

    out = run("reprocess_failed", "--tenant", "acme", "--error-contains", "corrupt", "--older-than", "60")
    assert "Requeued 1" in out
    assert statuses(old_corrupt, new_corrupt, missing, theirs) == ["pending", "failed", "failed", "failed"]


def test_reprocess_failed_goes_in_batches_with_progress(tenant, broker):
    items = [failed(tenant, "boom") for _ in range(5)]
    out = run("reprocess_failed", "--batch-size", "2")
    assert "| 2/5 [" in out and "| 4/5 [" in out and "| 5/5 [" in out  # a progress bar moved by batch
    assert set(statuses(*items)) == {"pending"}
    assert "Requeued 0" in run("reprocess_failed")  # idempotent


def test_requeue_stuck(tenant, other_tenant, broker):
    mine, spent, theirs = stuck(tenant), stuck(tenant, attempts=settings.MEDIA_MAX_ATTEMPTS), stuck(other_tenant)
    assert "2 media are stuck" in run("requeue_stuck", "--tenant", "acme", "--dry-run")
    out = run("requeue_stuck", "--tenant", "acme")
    assert "Requeued 1, failed 1" in out
    assert statuses(mine, spent, theirs) == ["pending", "failed", "processing"]


def test_pipeline_status(tenant, other_tenant, broker):
    failed(tenant, "The image is truncated or corrupt.")
    failed(tenant, "The image is truncated or corrupt.")
    stuck(tenant)
    MediaFactory(tenant=other_tenant, status=Media.Status.READY)
    out = run("pipeline_status", "--tenant", "acme")
    assert "failed             2" in out and "ready              0" in out and "stuck              1" in out
    assert "2  The image is truncated or corrupt." in out and "Queue depth: media 0" in out


def test_unknown_tenant_is_an_error():
    with pytest.raises(CommandError, match="No tenant"):
        run("reprocess_failed", "--tenant", "nobody")


def test_cleanup_orphans(tenant, other_tenant, media_storage):
    import os
    import time

    def store(key: str, age_hours: float = 2) -> None:
        path = media_storage / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        then = time.time() - age_hours * 3600
        os.utime(path, (then, then))

    kept = MediaFactory(
        tenant=tenant,
        storage_key="clients/acme/products/A/media/image/kept.jpg",
        thumbnail_key="clients/acme/products/A/media/image/kept.jpg.thumbnail/320.jpg",
    )
    store(kept.storage_key)
    store(kept.thumbnail_key)
    gone = MediaFactory(tenant=tenant, storage_key="clients/acme/products/A/media/image/gone.jpg")
    store("clients/acme/products/A/media/image/orphan.jpg")
    store("clients/acme/products/A/media/image/just-uploaded.jpg", age_hours=0)
    store("clients/globex/products/B/media/image/orphan.jpg")

    out = run("cleanup_orphans", "--tenant", "acme", "--dry-run")
    assert "Orphan files: 1 would be deleted" in out and "Media whose file is gone: 1 would be failed" in out
    assert (media_storage / "clients/acme/products/A/media/image/orphan.jpg").exists()

    out = run("cleanup_orphans", "--tenant", "acme")
    assert "Orphan files: 1 deleted" in out
    assert not (media_storage / "clients/acme/products/A/media/image/orphan.jpg").exists()
    assert (media_storage / "clients/acme/products/A/media/image/just-uploaded.jpg").exists()
    assert (media_storage / "clients/globex/products/B/media/image/orphan.jpg").exists()  # another tenant
    assert (media_storage / kept.storage_key).exists() and (media_storage / kept.thumbnail_key).exists()
    assert statuses(kept, gone) == ["pending", "failed"]
    assert Media.objects.get(pk=gone.pk).error == "The stored file is missing."
    assert "Orphan files: 0" in run("cleanup_orphans", "--tenant", "acme")  # idempotent


def test_cleanup_orphans_repairs_rows_out_of_step(
    tenant, other_tenant, media_storage, broker, django_capture_on_commit_callbacks
):
    from catalog.models import Embedding, VideoFrame
    from tests.factories import EmbeddingFactory, ProductFactory, VideoFrameFactory

    def store(key: str) -> None:
        (media_storage / key).parent.mkdir(parents=True, exist_ok=True)
        (media_storage / key).write_bytes(b"x")

    # A ready video whose second frame thumbnail is gone, and an image whose thumbnail is.
    lost = MediaFactory(
        tenant=tenant, status=Media.Status.READY, storage_key="v/lost.jpg", thumbnail_key="v/lost.t/320.jpg"
    )
    store(lost.storage_key)
    video = MediaFactory(tenant=tenant, kind=Media.Kind.VIDEO, status=Media.Status.READY, storage_key="v/video.mp4")
    store(video.storage_key)
    for index in range(2):
        VideoFrameFactory(media=video, index=index, thumbnail_key=f"v/video.frames/{index}.jpg")
    store("v/video.frames/0.jpg")
    # A failed item still holding a vector and a frame.
    failed_item = MediaFactory(tenant=tenant, status=Media.Status.FAILED, error="boom", kind=Media.Kind.VIDEO)
    EmbeddingFactory(media=failed_item, frame=VideoFrameFactory(media=failed_item, index=0, thumbnail_key=""))
    # Vectors that lost step with their media's product, here and at the other tenant.
    item = MediaFactory(tenant=tenant, status=Media.Status.READY, storage_key="v/item.jpg")
    store(item.storage_key)
    EmbeddingFactory(media=item, product=ProductFactory(tenant=tenant))
    theirs = MediaFactory(tenant=other_tenant, status=Media.Status.READY)
    EmbeddingFactory(media=theirs, product=None)
    unassigned = MediaFactory(tenant=tenant, product=None, status=Media.Status.READY, storage_key="v/u.jpg")
    store(unassigned.storage_key)
    EmbeddingFactory(media=unassigned, product=None)  # both unassigned: in step

    out = run("cleanup_orphans", "--tenant", "acme", "--dry-run")
    assert "Media with missing thumbnails: 2 would be reprocessed" in out
    assert "Vectors and frames left on failed media: 2 would be deleted" in out
    assert "Vectors whose product differs from their media's: 1 would be re-aligned" in out
    assert statuses(video) == ["ready"] and Embedding.objects.filter(media=failed_item).exists()

    with django_capture_on_commit_callbacks(execute=True):
        out = run("cleanup_orphans", "--tenant", "acme")
    # Processing writes the thumbnails again.
    assert statuses(video, lost) == ["pending", "pending"] and broker.llen("media") >= 1
    assert not Embedding.objects.filter(media=failed_item).exists()
    assert not VideoFrame.objects.filter(media=failed_item).exists()
    assert Embedding.objects.get(media=item).product_id == item.product_id
    assert Embedding.objects.get(media=theirs).product_id is None  # another tenant: untouched
    assert "re-aligned" in out and ": 0 re-aligned" in run("cleanup_orphans", "--tenant", "acme")
