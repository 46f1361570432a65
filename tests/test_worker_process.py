"""A real worker process: killed with SIGKILL mid-task, its item is redone by
the next worker, not lost; a worker whose model does not fit refuses to start."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from catalog.models import Embedding, Media, VideoFrame
from config.queues import enqueue_processing
from tests.conftest import wait_for, wait_until_settled
from tests.factories import MediaFactory
from tests.media_files import video_bytes
from tests.worker_process import kill, start_worker, worker_env


@pytest.mark.slow
def test_worker_killed_mid_task_leaves_the_item_to_be_redone(
    transactional_db, tenant, tiny_model, broker, media_storage
):
    # Noise frames are all different: every sampled frame is kept, which keeps
    # the worker busy long enough to be killed in the middle.
    data = video_bytes(seconds=20, width=320, height=240, fps=15, noise=True)
    key = default_storage.save("clients/acme/long.mp4", ContentFile(data))
    media = MediaFactory(
        tenant=tenant, product=None, kind=Media.Kind.VIDEO, storage_key=key, content_type="video/mp4", size=len(data)
    )
    env = worker_env(
        media_storage,
        str(tiny_model),
        VIDEO_SAMPLE_SECONDS="0.07",
        VIDEO_MAX_FRAMES="300",
        CELERY_VISIBILITY_TIMEOUT="5",
        CELERY_UNACKED_RESTORE_SECONDS="1",
    )
    enqueue_processing([media.pk])  # no transaction here: sent at once

    first = start_worker(env)
    try:
        wait_for(
            lambda: Media.objects.get(pk=media.pk).status == Media.Status.PROCESSING,
            timeout=90,
            interval=0.02,
            what="the first worker to claim the video",
        )
        kill(first)
        killed = Media.objects.get(pk=media.pk)
        assert killed.status == Media.Status.PROCESSING and killed.attempts == 1
        assert not Embedding.objects.filter(media=media).exists()
    finally:
        kill(first)

    second = start_worker(env)
    try:
        done = wait_until_settled([media.pk], timeout=120)[media.pk]
    finally:
        kill(second)
    assert done.status == Media.Status.READY, done.error
    assert done.attempts == 2  # the same delivery, taken again after the worker was lost
    frames = VideoFrame.objects.filter(media=media).count()
    assert frames > 100 and Embedding.objects.filter(media=media).count() == frames


def test_worker_refuses_to_start_with_a_model_that_does_not_fit(tmp_path, db, broker, media_storage):
    from transformers import CLIPConfig

    CLIPConfig(projection_dim=768).save_pretrained(tmp_path)
    process = start_worker(worker_env(media_storage, str(tmp_path)))
    try:
        output, _ = process.communicate(timeout=120)
    finally:
        kill(process)
    assert process.returncode != 0
    assert "projects to 768 dimensions" in output.decode()
