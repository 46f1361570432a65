"""Duplicates in three tiers (exact, near_identical, similar) and the
thumbnails processing stores: a corpus of re-encoded, resized and lightly
cropped copies sorts as near-identical, distinct photos of the same product
do not; videos re-encoded are near-identical; nothing crosses tenants."""

from __future__ import annotations

import io
import itertools

import av
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.db import connection, transaction
from PIL import Image

from catalog.models import Media, TenantSettings, VideoFrame
from media_pipeline import fingerprints
from media_pipeline.processing import process_batch
from ops_console.demo_media import SAMPLE_PRODUCTS, product_image, product_video
from tests.factories import stored_media


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def cropped(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((int(w * left), int(h * top), w - int(w * right), h - int(h * bottom)))


# What a copy of a photo goes through on its way to a second upload.
COPIES = {
    "re-encoded at quality 40": lambda image: jpeg(image, 40),
    "converted to PNG": png,
    "resized to half": lambda image: jpeg(image.resize((image.width // 2, image.height // 2)), 90),
    "resized to 320 and re-encoded": lambda image: jpeg(image.resize((320, 240)), 60),
    "3% cropped off each side": lambda image: jpeg(cropped(image, 0.03, 0.03, 0.03, 0.03), 90),
    "10% cropped off each side": lambda image: jpeg(cropped(image, 0.1, 0.1, 0.1, 0.1), 90),
    "6% cropped off the left and the bottom": lambda image: jpeg(cropped(image, 0.06, 0, 0, 0.06), 90),
}
PHOTOS = {
    (product.sku, variant): product_image(product, variant) for product in SAMPLE_PRODUCTS for variant in (0, 1, 2)
}


def thumbnail(data: bytes) -> Image.Image:
    """The picture as the duplicate check sees it: its stored thumbnail."""
    return picture(fingerprints.thumbnail_jpeg(picture(data)))


@pytest.mark.parametrize("copy", COPIES)
def test_copies_of_a_photo_are_the_same_picture(copy):
    for data in PHOTOS.values():
        assert fingerprints.same_picture(thumbnail(data), thumbnail(COPIES[copy](picture(data))))


def test_distinct_photos_of_the_same_product_are_not_the_same_picture():
    for product in SAMPLE_PRODUCTS:
        for a, b in itertools.combinations((0, 1, 2), 2):
            first, second = thumbnail(PHOTOS[(product.sku, a)]), thumbnail(PHOTOS[(product.sku, b)])
            assert not fingerprints.same_picture(first, second), (product.sku, a, b)


def test_a_crop_moves_the_perceptual_hash_as_far_as_a_different_photo():
    """Why the hash only proposes candidates and the alignment decides."""
    photo, other = picture(PHOTOS[("SNK-RED-01", 0)]), picture(PHOTOS[("SNK-RED-01", 1)])
    same = fingerprints.perceptual_hash(photo)
    assert fingerprints.hash_distance(same, fingerprints.perceptual_hash(picture(jpeg(photo, 40)))) <= 4
    crop = fingerprints.hash_distance(
        same, fingerprints.perceptual_hash(picture(COPIES["3% cropped off each side"](photo)))
    )
    different = fingerprints.hash_distance(same, fingerprints.perceptual_hash(other))
    assert crop <= fingerprints.CANDIDATE_BITS and different <= fingerprints.CANDIDATE_BITS


def stored(tenant, name: str, data: bytes, kind: str = "image") -> Media:
    content_type = "image/jpeg" if kind == "image" else "video/mp4"
    return stored_media(
        f"clients/{tenant.slug}/dups/{name}", data, tenant=tenant, product=None, kind=kind, content_type=content_type
    )


def settle(*media: Media) -> dict[int, Media]:
    for number, item in enumerate(media):  # one at a time, oldest first, as uploads come
        process_batch([item.pk], f"task-{item.pk}-{number}")
    return Media.objects.in_bulk([item.pk for item in media])


@pytest.fixture
def no_similar(tenant):
    """The `similar` tier off: the small random model finds every pair alike."""
    TenantSettings.objects.filter(tenant=tenant).update(near_duplicate_similarity=1.0)


@pytest.mark.django_db
def test_the_pipeline_sorts_copies_by_tier(tenant, clip, no_similar):
    photo = PHOTOS[("MUG-YEL-01", 0)]
    image = picture(photo)
    items = {
        "original": stored(tenant, "original.jpg", photo),
        "same bytes": stored(tenant, "again.jpg", photo),
        "re-encoded": stored(tenant, "reencoded.jpg", COPIES["re-encoded at quality 40"](image)),
        "cropped": stored(tenant, "cropped.jpg", COPIES["6% cropped off the left and the bottom"](image)),
        "resized": stored(tenant, "resized.jpg", COPIES["resized to half"](image)),
        "other photo": stored(tenant, "other.jpg", PHOTOS[("MUG-YEL-01", 1)]),
        "other product": stored(tenant, "product.jpg", PHOTOS[("MUG-GRN-02", 0)]),
    }
    rows = settle(*items.values())
    found = {name: (rows[m.pk].duplicate_of_id, rows[m.pk].duplicate_kind) for name, m in items.items()}
    original = items["original"].pk
    assert found == {
        "original": (None, ""),
        "same bytes": (original, "exact"),
        "re-encoded": (original, "near_identical"),
        "cropped": (original, "near_identical"),
        "resized": (original, "near_identical"),
        "other photo": (None, ""),
        "other product": (None, ""),
    }
    assert rows[items["same bytes"].pk].duplicate_similarity == 1
    assert 0.5 < rows[items["re-encoded"].pk].duplicate_similarity <= 1


@pytest.mark.django_db
def test_similar_is_the_clip_tier(tenant, clip):
    TenantSettings.objects.filter(tenant=tenant).update(near_duplicate_similarity=0.0)
    first = stored(tenant, "a.jpg", PHOTOS[("LMP-BLK-01", 0)])
    second = stored(tenant, "b.jpg", PHOTOS[("LMP-BLK-01", 1)])
    rows = settle(first, second)
    assert (rows[second.pk].duplicate_of_id, rows[second.pk].duplicate_kind) == (first.pk, "similar")
    assert rows[second.pk].duplicate_similarity == pytest.approx(
        float(np.dot(*[np.asarray(m.embeddings.get().vector) for m in (rows[first.pk], rows[second.pk])])), abs=1e-4
    )


@pytest.mark.django_db
def test_duplicates_never_cross_tenants(tenant, other_tenant, clip, no_similar):
    photo = PHOTOS[("BAG-BRN-01", 0)]
    TenantSettings.objects.filter(tenant=other_tenant).update(near_duplicate_similarity=0.0)
    theirs = [stored(other_tenant, "a.jpg", photo), stored(other_tenant, "b.jpg", jpeg(picture(photo), 40))]
    mine = [stored(tenant, "a.jpg", photo), stored(tenant, "b.jpg", jpeg(picture(photo), 40))]
    rows = settle(*theirs, *mine)
    assert rows[mine[0].pk].duplicate_of_id is None
    assert rows[mine[1].pk].duplicate_of_id == mine[0].pk
    assert rows[theirs[1].pk].duplicate_of_id == theirs[0].pk


@pytest.mark.django_db
def test_each_image_gets_a_thumbnail_and_a_hash_a_failed_one_keeps_only_its_picture(
    tenant, clip, django_capture_on_commit_callbacks
):
    good = stored(tenant, "good.jpg", PHOTOS[("SNK-BLU-02", 0)])
    rows = settle(good)
    key = rows[good.pk].thumbnail_key
    with default_storage.open(key) as file:
        assert max(Image.open(file).size) == fingerprints.THUMBNAIL_SIDE
    assert rows[good.pk].phash is not None

    from catalog import transitions

    with django_capture_on_commit_callbacks(execute=True):
        transitions.fail(Media.objects.filter(pk=good.pk), "Operator marked it failed.")
    failed = Media.objects.get(pk=good.pk)
    assert (failed.thumbnail_key, failed.phash) == (key, None)
    assert default_storage.exists(key)  # the operators' picture of what failed


def reencoded(video: bytes, crf: int, scale: float = 1.0) -> bytes:
    """The clip decoded and encoded again: other bytes, other bitrate, maybe smaller."""
    out = io.BytesIO()
    with av.open(io.BytesIO(video)) as source, av.open(out, mode="w", format="mp4") as target:
        decoded = source.streams.video[0]
        stream = target.add_stream("libx264", rate=decoded.average_rate)
        stream.width = int(decoded.codec_context.width * scale) // 2 * 2
        stream.height = int(decoded.codec_context.height * scale) // 2 * 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in source.decode(decoded):
            image = frame.to_image().resize((stream.width, stream.height))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    return out.getvalue()


@pytest.mark.django_db
def test_videos_same_bytes_re_encoded_or_other(tenant, clip, no_similar):
    clip_bytes = product_video(SAMPLE_PRODUCTS[0])
    original = stored(tenant, "a.mp4", clip_bytes, kind="video")
    same = stored(tenant, "b.mp4", clip_bytes, kind="video")
    smaller = stored(tenant, "c.mp4", reencoded(clip_bytes, crf=32, scale=0.5), kind="video")
    other = stored(tenant, "d.mp4", product_video(SAMPLE_PRODUCTS[2]), kind="video")
    rows = settle(original, same, smaller, other)
    assert {m.status for m in rows.values()} == {"ready"}
    found = {m.pk: (m.duplicate_of_id, m.duplicate_kind) for m in rows.values()}
    assert found == {
        original.pk: (None, ""),
        same.pk: (original.pk, "exact"),
        smaller.pk: (original.pk, "near_identical"),
        other.pk: (None, ""),
    }
    # A video's picture is its first kept frame's.
    first_frame = VideoFrame.objects.filter(media=original).order_by("index").first()
    assert rows[original.pk].thumbnail_key == first_frame.thumbnail_key
    assert VideoFrame.objects.filter(media=original, phash__isnull=True).count() == 0


@pytest.mark.django_db
def test_deleting_an_image_deletes_its_thumbnail(tenant, clip, django_capture_on_commit_callbacks):
    from catalog.media import delete_media

    item = stored(tenant, "gone.jpg", PHOTOS[("BAG-PNK-02", 2)])
    key = settle(item)[item.pk].thumbnail_key
    assert default_storage.exists(key)
    with django_capture_on_commit_callbacks(execute=True):
        delete_media(Media.objects.filter(pk=item.pk))
    assert not default_storage.exists(key)


@pytest.mark.django_db
def test_console_pictures_come_signed_from_s3(tenant, clip, s3_bucket, moto_endpoint):
    import requests

    from catalog.pictures import media_picture_url

    item = stored(tenant, "s3.jpg", PHOTOS[("LMP-WHT-02", 0)])
    rows = settle(item)
    url = media_picture_url(rows[item.pk])
    assert url.startswith(moto_endpoint) and "Signature" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and picture(response.content).size[0] == fingerprints.THUMBNAIL_SIDE


@pytest.mark.django_db
def test_the_admin_shows_each_pair_side_by_side_with_its_tier(staff, tenant, other_tenant, clip, no_similar):
    photo = PHOTOS[("SNK-RED-01", 2)]
    first, copy, exact = (
        stored(tenant, "1.jpg", photo),
        stored(tenant, "2.jpg", jpeg(picture(photo), 40)),
        stored(tenant, "3.jpg", photo),
    )
    settle(first, copy, exact)
    theirs = settle(stored(other_tenant, "1.jpg", photo), stored(other_tenant, "2.jpg", photo))
    page = staff.get("/admin/ops_console/duplicatemedia/", {"tenant__id__exact": tenant.pk})
    assert page.status_code == 200
    rows = {row.pk: row for row in page.context["cl"].result_list}
    assert set(rows) == {copy.pk, exact.pk}
    html = page.content.decode()
    assert html.count('class="sm-picture"') == 4  # each copy beside its original
    assert "Near Identical" in html and "Exact" in html
    assert not set(theirs) & set(rows)
    only_exact = staff.get("/admin/ops_console/duplicatemedia/", {"duplicate_kind__exact": "exact"})
    assert {row.pk for row in only_exact.context["cl"].result_list} == {exact.pk, max(theirs)}


@pytest.mark.django_db
def test_a_products_page_shows_its_media_and_a_videos_frames(staff, tenant, clip):
    from tests.factories import ProductFactory

    product = ProductFactory(tenant=tenant)
    image = stored_media(f"clients/{tenant.slug}/p/a.jpg", PHOTOS[("MUG-GRN-02", 1)], tenant=tenant, product=product)
    video = stored_media(
        f"clients/{tenant.slug}/p/a.mp4",
        product_video(SAMPLE_PRODUCTS[3]),
        tenant=tenant,
        product=product,
        kind="video",
        content_type="video/mp4",
    )
    settle(image, video)
    html = staff.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    frames = VideoFrame.objects.filter(media=video).count()
    assert frames >= 2
    assert html.count('class="sm-picture"') == 2 + frames
    assert html.count('class="sm-frames"') == 1


@pytest.mark.django_db
def test_a_copy_of_a_copy_keeps_the_weaker_tier(tenant, clip):
    TenantSettings.objects.filter(tenant=tenant).update(near_duplicate_similarity=0.0)
    first = stored(tenant, "a.jpg", PHOTOS[("MUG-GRN-02", 0)])
    other = stored(tenant, "b.jpg", PHOTOS[("MUG-GRN-02", 2)])  # similar (the tiny model), not the same picture
    again = stored(tenant, "c.jpg", PHOTOS[("MUG-GRN-02", 2)])  # the same bytes as `other`
    rows = settle(first, other, again)
    assert (rows[other.pk].duplicate_of_id, rows[other.pk].duplicate_kind) == (first.pk, "similar")
    # Exact to `other`, only similar to `first`: it names `other`.
    assert (rows[again.pk].duplicate_of_id, rows[again.pk].duplicate_kind) == (other.pk, "exact")


@pytest.mark.django_db
def test_copies_ready_before_their_original_are_linked_when_it_is(tenant, clip, no_similar):
    photo = PHOTOS[("SNK-BLU-02", 1)]
    original = stored(tenant, "first.jpg", photo)
    exact, copy = stored(tenant, "second.jpg", photo), stored(tenant, "third.jpg", jpeg(picture(photo), 40))
    rows = settle(exact, copy, original)  # the original, uploaded first, is processed last
    assert (rows[exact.pk].duplicate_of_id, rows[exact.pk].duplicate_kind) == (original.pk, "exact")
    assert (rows[copy.pk].duplicate_of_id, rows[copy.pk].duplicate_kind) == (original.pk, "near_identical")
    assert rows[original.pk].duplicate_of_id is None


@pytest.mark.django_db
def test_an_original_that_goes_or_fails_leaves_no_link_behind(
    tenant, clip, no_similar, django_capture_on_commit_callbacks
):
    from catalog import transitions
    from catalog.media import delete_media

    photo = PHOTOS[("LMP-WHT-02", 2)]
    first, copy = stored(tenant, "a.jpg", photo), stored(tenant, "b.jpg", photo)
    second, copy_of_second = (
        stored(tenant, "c.jpg", PHOTOS[("BAG-PNK-02", 0)]),
        stored(tenant, "d.jpg", PHOTOS[("BAG-PNK-02", 0)]),
    )
    settle(first, copy, second, copy_of_second)
    with django_capture_on_commit_callbacks(execute=True):
        delete_media(Media.objects.filter(pk=first.pk))
    transitions.fail(Media.objects.filter(pk=second.pk), "Marked failed by ops.")
    for item in (copy, copy_of_second):
        item.refresh_from_db()
        assert (item.duplicate_of_id, item.duplicate_kind, item.duplicate_similarity) == (None, "", None)


def _ready_hashed_images(tenant, hashes: list[int]) -> list[Media]:
    return Media.objects.bulk_create(
        Media(
            tenant=tenant,
            kind=Media.Kind.IMAGE,
            storage_key=f"clients/{tenant.slug}/many/{n}.jpg",
            content_type="image/jpeg",
            size=1,
            status=Media.Status.READY,
            phash=phash,
        )
        for n, phash in enumerate(hashes)
    )


def _random_hashes(count: int, seed: int) -> list[int]:
    signed = np.random.default_rng(seed).integers(-(2**63), 2**63 - 1, count, dtype=np.int64)
    return [int(value) for value in signed]


def _flipped(phash: int, bits: list[int]) -> int:
    unsigned = phash & ((1 << 64) - 1)
    for bit in bits:
        unsigned ^= 1 << bit
    return unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned


@pytest.mark.django_db
def test_a_large_tenant_finds_copies_through_the_hash_bands(tenant, other_tenant, clip, no_similar, monkeypatch):
    from media_pipeline import duplicates

    monkeypatch.setattr(duplicates, "EXACT_SCAN_MAX_IMAGES", 3)
    _ready_hashed_images(tenant, _random_hashes(10, seed=1))  # a large tenant here: more than 3 hashed images
    photo = PHOTOS[("BAG-BRN-01", 0)]
    image = picture(photo)
    theirs = stored(other_tenant, "original.jpg", photo)
    original = stored(tenant, "original.jpg", photo)
    copies = {
        name: stored(tenant, f"{n}.jpg", COPIES[name](image)) for n, name in enumerate(COPIES) if "crop" not in name
    }
    other = stored(tenant, "other.jpg", PHOTOS[("BAG-BRN-01", 1)])
    rows = settle(theirs, original, *copies.values(), other)
    assert duplicates.large_tenants({tenant.pk, other_tenant.pk}) == {tenant.pk}
    for name, copy in copies.items():
        assert (rows[copy.pk].duplicate_of_id, rows[copy.pk].duplicate_kind) == (original.pk, "near_identical"), name
    assert rows[original.pk].duplicate_of_id is None and rows[other.pk].duplicate_of_id is None


@pytest.mark.django_db
def test_the_band_lookup_finds_every_hash_within_three_bits_and_reads_the_band_index(tenant, other_tenant):
    from media_pipeline import duplicates

    hashes = _random_hashes(3000, seed=2)
    _ready_hashed_images(tenant, hashes)
    _ready_hashed_images(other_tenant, hashes[:500])  # the same hashes in another tenant: never found
    rng = np.random.default_rng(3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_media")
    for phash in hashes[:40]:
        flipped = _flipped(phash, [int(bit) for bit in rng.choice(64, 3, replace=False)])
        copy = Media(pk=10**9, tenant=tenant, kind=Media.Kind.IMAGE, phash=flipped)
        found = duplicates.nearest_by_hash(copy, large=True, limit=1000)
        ids = Media.objects.filter(pk__in=found).values_list("tenant_id", "phash")
        assert phash in {value for _, value in ids} and {tenant_id for tenant_id, _ in ids} == {tenant.pk}
    params = {"hash": hashes[0], "tenant": tenant.pk, "id": 10**9, "bits": 24, "limit": 3}
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + duplicates._hash_query(duplicates.EARLIER, large=True), params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "media_phash_bands" in plan, plan


def test_a_large_tenants_nearest_by_clip_reads_its_own_index(tenant_indexes_dropped, monkeypatch, settings):
    from catalog.models import Embedding
    from media_pipeline import duplicates
    from media_pipeline.embedder import current_model_name
    from search import query, tenant_indexes
    from search.indexes import tenant_index_name
    from tests.factories import TenantFactory

    monkeypatch.setattr(query, "EXACT_SCAN_MAX_VECTORS", 100)
    big = TenantFactory(slug="big")
    rng = np.random.default_rng(4)
    # As many as a tenant with an index of its own has: with a few hundred,
    # PostgreSQL rightly sorts them instead (tests/test_tenant_indexes.py).
    vectors = rng.standard_normal((2500, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    media = _ready_hashed_images(big, _random_hashes(2500, seed=5))
    Embedding.objects.bulk_create(
        Embedding(tenant=big, media=m, model_name=current_model_name(), vector=v)
        for m, v in zip(media, vectors, strict=True)
    )
    tenant_indexes.sync(model_names=[current_model_name()])
    # The last image is a near copy of the 100th: its nearest earlier image, through the index.
    last = media[-1]
    Embedding.objects.filter(media=last).update(vector=(vectors[99] + 0.05 * vectors[7]).tolist())
    assert duplicates.nearest_by_clip([last])[last.pk][0] == media[99].pk
    params = {"tenant": big.pk, "model": current_model_name(), "id": last.pk}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        cursor.execute("EXPLAIN " + duplicates._nearest_query(duplicates.BY_INDEX), params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert tenant_index_name(big.pk, current_model_name()) in plan, plan
