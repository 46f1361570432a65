from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from catalog.models import Media
from media_pipeline.sweeper import sweep
from tests.conftest import queued_batches
from tests.factories import MediaFactory, TenantSettingsFactory

pytestmark = pytest.mark.django_db


def processing(tenant, minutes_ago: int, attempts: int) -> Media:
    return MediaFactory(
        tenant=tenant,
        status=Media.Status.PROCESSING,
        claim_token="dead-task",
        attempts=attempts,
        processing_started_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def queued_ids(broker) -> list[int]:
    return [media_id for batch in queued_batches(broker) for media_id in batch]


def test_stuck_items_are_requeued_while_attempts_remain(tenant, broker, django_capture_on_commit_callbacks):
    stuck = processing(tenant, minutes_ago=45, attempts=1)
    recent = processing(tenant, minutes_ago=5, attempts=1)

    with django_capture_on_commit_callbacks(execute=True):
        report = sweep()

    assert report.requeued == 1 and report.failed == 0
    stuck.refresh_from_db()
    recent.refresh_from_db()
    assert stuck.status == Media.Status.PENDING and stuck.claim_token == ""
    assert recent.status == Media.Status.PROCESSING
    assert queued_ids(broker) == [stuck.pk]


def test_stuck_items_fail_with_a_reason_after_the_last_attempt(tenant, broker):
    last = processing(tenant, minutes_ago=45, attempts=settings.MEDIA_MAX_ATTEMPTS)
    report = sweep()
    last.refresh_from_db()
    assert report.failed == 1
    assert last.status == Media.Status.FAILED
    assert f"Gave up after {settings.MEDIA_MAX_ATTEMPTS} attempts" in last.error
    assert last.processed_at is not None


def test_each_tenant_has_its_own_stuck_threshold(tenant, other_tenant, broker):
    TenantSettingsFactory(tenant=tenant, stuck_after_minutes=5)
    TenantSettingsFactory(tenant=other_tenant, stuck_after_minutes=120)
    mine = processing(tenant, minutes_ago=10, attempts=1)
    theirs = processing(other_tenant, minutes_ago=10, attempts=1)
    sweep()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, theirs.status) == (Media.Status.PENDING, Media.Status.PROCESSING)


def test_pending_items_that_lost_their_message_are_requeued(tenant, broker, django_capture_on_commit_callbacks):
    lost = MediaFactory(tenant=tenant)
    fresh = MediaFactory(tenant=tenant)
    long_ago = timezone.now() - timedelta(minutes=settings.PENDING_REQUEUE_MINUTES + 1)
    Media.objects.filter(pk=lost.pk).update(updated_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        report = sweep()

    assert report.pending_requeued == 1
    assert queued_ids(broker) == [lost.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep().pending_requeued == 0  # not again on the next sweep
    assert fresh.pk not in queued_ids(broker)


def test_the_sweeper_is_scheduled_by_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-media"]
    assert entry["task"] == "media_pipeline.sweep_media"
    from config.celery import app

    app.loader.import_default_modules()
    assert "media_pipeline.sweep_media" in app.tasks
