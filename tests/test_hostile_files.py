"""The hostile-file corpus (tests/hostile_files.py): each file gets its defined
outcome at upload, and through a real worker process when it arrives unchecked
(as S3 objects do): no crash, no retry loop, the items around it processed."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Embedding, Media, VideoFrame
from config.queues import enqueue_processing
from tests.conftest import error_code, wait_until_settled
from tests.factories import UNCHECKED, ProductFactory, stored_media
from tests.hostile_files import CASES, Case
from tests.media_files import jpeg_bytes
from tests.worker_process import kill, start_worker, worker_env

assert len(CASES) >= 30


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return {case.name: case.make() for case in CASES}


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_upload_outcome(api, media_storage, corpus, case: Case):
    upload = SimpleUploadedFile(case.filename, corpus[case.name], content_type=case.content_type)
    response = api.post("/api/v1/media/", {"file": upload}, format="multipart")
    if case.refused:
        status, code = case.refused
        assert (response.status_code, error_code(response)) == (status, code), response.content
        assert case.reason in str(response.json()["error"])
        assert not Media.objects.exists()
        assert not any(path.is_file() for path in media_storage.rglob("*"))
    else:
        assert response.status_code == 202, response.content
        media = Media.objects.get()
        assert (media.status, media.kind) == (Media.Status.PENDING, case.kind)
        assert default_storage.exists(media.storage_key)


@pytest.mark.slow
def test_worker_process_survives_the_corpus(transactional_db, tenant, tiny_model, broker, media_storage, corpus):
    """Every file of the corpus, stored as an S3 object would be (not checked
    on the way in), between good photos, through one real worker process."""
    product = ProductFactory(tenant=tenant, sku="CORPUS")
    hostile: dict[int, Case] = {}
    good: list[int] = []
    for n, case in enumerate(CASES):
        good.append(stored(product, f"good-{n}.jpg", jpeg_bytes(96, 64, seed=n)).pk)
        hostile[stored(product, case.filename, corpus[case.name], case.kind).pk] = case
    good.append(stored(product, "good-last.jpg", jpeg_bytes(96, 64, seed=999)).pk)
    enqueue_processing([*good, *hostile])

    process = start_worker(worker_env(media_storage, str(tiny_model)))
    try:
        settled = wait_until_settled([*good, *hostile], timeout=240)
        assert process.poll() is None, "the worker died"
    finally:
        kill(process)

    for media_id in good:
        assert settled[media_id].status == Media.Status.READY, settled[media_id].error
    outcomes = {}
    for media_id, case in hostile.items():
        media = settled[media_id]
        outcomes[case.name] = (media.status, media.error)
        expected = Media.Status.FAILED if case.refused else case.outcome
        assert media.status == expected, (case.name, media.error)
        assert case.reason in media.error, (case.name, media.error)
        embeddings = Embedding.objects.filter(media_id=media_id).count()
        if media.status == Media.Status.FAILED:
            assert media.error and embeddings == 0, case.name
        elif media.kind == Media.Kind.VIDEO:
            assert embeddings == VideoFrame.objects.filter(media_id=media_id).count() > 0, case.name
        else:
            assert embeddings == 1, case.name
    # No item was taken twice: a crash would have redelivered its batch.
    assert set(Media.objects.values_list("attempts", flat=True)) == {1}, outcomes


def stored(product, filename: str, data: bytes, kind: str = Media.Kind.IMAGE) -> Media:
    key = f"clients/{product.tenant.slug}/products/{product.sku}/media/{kind}/{filename}"
    return stored_media(
        key, data, tenant=product.tenant, product=product, kind=kind, original_filename=filename, **UNCHECKED
    )
