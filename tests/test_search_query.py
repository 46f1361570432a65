"""Ranking, grouping and tenant scoping of the vector query, with controlled
vectors inserted directly."""

from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection, transaction

from catalog.models import Embedding, Media
from catalog.products import assign_product
from search import filters, query
from search.filters import ProductFilter
from search.query import nearest_products
from tests.factories import EmbeddingFactory, MediaFactory, ProductFactory, TenantFactory, VideoFrameFactory

pytestmark = pytest.mark.django_db

MODEL = "test-clip"
DIM = 512


def unit(vector) -> list[float]:
    vector = np.asarray(vector, dtype=np.float64)
    return (vector / np.linalg.norm(vector)).tolist()


def near(base, angle: float, seed: int) -> list[float]:
    """A unit vector at cosine cos(angle) from `base`."""
    base = np.asarray(base)
    noise = np.random.default_rng(seed).standard_normal(DIM)
    noise -= noise @ base * base
    noise /= np.linalg.norm(noise)
    return unit(np.cos(angle) * base + np.sin(angle) * noise)


@pytest.fixture
def q():
    return unit(np.random.default_rng(42).standard_normal(DIM))


def add(tenant, vector, product=None, kind=Media.Kind.IMAGE, frame=None, media=None):
    media = media or MediaFactory(tenant=tenant, product=product, kind=kind)
    return EmbeddingFactory(media=media, product=product, frame=frame, model_name=MODEL, vector=vector)


def search(tenant, vector, **options):
    options.setdefault("min_score", 0.0)
    return nearest_products(vector, tenant_id=tenant.pk, model_name=MODEL, **options)


def test_known_nearest_neighbours_come_first(tenant, q):
    products = [ProductFactory(tenant=tenant, sku=f"P{i}") for i in range(5)]
    for i, product in enumerate(products):
        add(tenant, near(q, 0.1 + 0.2 * i, seed=i), product)
    hits = search(tenant, q, k=3).hits
    assert [h.product_id for h in hits] == [p.pk for p in products[:3]]
    assert hits[0].score == pytest.approx(np.cos(0.1), abs=1e-4)
    assert hits[0].score > hits[1].score > hits[2].score


def test_a_product_with_several_images_counts_once_with_its_best(tenant, q):
    shoe, mug = ProductFactory(tenant=tenant, sku="SHOE"), ProductFactory(tenant=tenant, sku="MUG")
    best = add(tenant, near(q, 0.05, 1), shoe)
    add(tenant, near(q, 0.10, 2), shoe)
    add(tenant, near(q, 0.15, 3), shoe)
    add(tenant, near(q, 0.30, 4), mug)
    hits = search(tenant, q, k=10).hits
    assert [h.product_id for h in hits] == [shoe.pk, mug.pk]
    assert hits[0].media_id == best.media_id


def test_a_product_with_many_near_images_does_not_hide_the_next_product(tenant, q):
    shoe, mug = ProductFactory(tenant=tenant, sku="SHOE"), ProductFactory(tenant=tenant, sku="MUG")
    for i in range(3 * query.HITS_PER_PRODUCT):  # more of the shoe's rows than the scan keeps for k=2
        add(tenant, near(q, 0.05 + 0.01 * i, seed=i), shoe)
    add(tenant, near(q, 0.5, 99), mug)
    found = search(tenant, q, k=2)
    assert found.strategy == "exact"
    assert [h.product_id for h in found.hits] == [shoe.pk, mug.pk]


def test_frames_are_reported_with_the_video(tenant, q):
    product = ProductFactory(tenant=tenant)
    video = MediaFactory(tenant=tenant, product=product, kind=Media.Kind.VIDEO)
    frames = [VideoFrameFactory(media=video, index=i, timestamp_ms=i * 1000) for i in range(3)]
    for i, frame in enumerate(frames):
        add(tenant, near(q, 0.4 - 0.1 * i, seed=i), product, frame=frame, media=video)
    [hit] = search(tenant, q).hits
    assert hit.media_id == video.pk and hit.frame_id == frames[2].pk


def test_unassigned_media_are_their_own_entries(tenant, q):
    loose = [add(tenant, near(q, 0.1 * (i + 1), seed=i)) for i in range(3)]
    hits = search(tenant, q).hits
    assert [h.media_id for h in hits] == [e.media_id for e in loose]
    assert all(h.product_id is None for h in hits)


def test_another_tenant_is_never_seen_even_when_nearer(tenant, other_tenant, q):
    mine = add(tenant, near(q, 0.6, 1), ProductFactory(tenant=tenant))
    for i in range(5):
        add(other_tenant, near(q, 0.01 * (i + 1), seed=10 + i), ProductFactory(tenant=other_tenant))
    hits = search(tenant, q).hits
    assert [h.media_id for h in hits] == [mine.media_id]


def test_min_score_and_category(tenant, q):
    shoe = ProductFactory(tenant=tenant, category="shoes")
    mug = ProductFactory(tenant=tenant, category="mugs")
    add(tenant, near(q, 0.2, 1), shoe)  # cos 0.98
    add(tenant, near(q, 1.2, 2), mug)  # cos 0.36
    assert [h.product_id for h in search(tenant, q, min_score=0.5).hits] == [shoe.pk]
    assert [h.product_id for h in search(tenant, q, category="mugs").hits] == [mug.pk]
    assert search(tenant, q, category="lamps").hits == []


def test_the_category_filter_follows_the_product_as_it_changes(tenant, q):
    shoe = ProductFactory(tenant=tenant, category="shoes")
    add(tenant, near(q, 0.2, 1), shoe)
    loose = add(tenant, near(q, 0.3, 2))  # not yet assigned: in no category
    assert [h.product_id for h in search(tenant, q, category="shoes").hits] == [shoe.pk]
    shoe.category = "boots"
    shoe.save()  # the admin, the API and imports all save like this
    assert search(tenant, q, category="shoes").hits == []
    assert [h.product_id for h in search(tenant, q, category="boots").hits] == [shoe.pk]
    lamp = ProductFactory(tenant=tenant, category="lamps")
    assert search(tenant, q, category="lamps").hits == []
    assert assign_product(loose.media_id, lamp)
    assert [h.media_id for h in search(tenant, q, category="lamps").hits] == [loose.media_id]


def test_vectors_from_before_the_product_columns_are_filtered_through_the_product_until_filled(tenant, other_tenant, q):
    shoe = ProductFactory(tenant=tenant, category="shoes", attributes={"color": "red"})
    mug = ProductFactory(tenant=tenant, category="mugs")
    add(tenant, near(q, 0.2, 1), shoe)
    add(tenant, near(q, 0.3, 2), mug)
    add(other_tenant, near(q, 0.1, 3), ProductFactory(tenant=other_tenant, category="shoes"))
    with connection.cursor() as cursor:  # rows as migration 0010 finds them: the trigger off for this update
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE catalog_embedding SET category = NULL, attributes = NULL")
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
    red = ProductFilter(attributes=(("color", ("red",)),))
    assert not query._lookups(tenant.pk, MODEL, ["shoes"]).on_rows
    assert [h.product_id for h in search(tenant, q, category="shoes").hits] == [shoe.pk]
    assert [h.product_id for h in search(tenant, q, product_filter=red).hits] == [shoe.pk]

    out = StringIO()
    call_command("fill_embedding_categories", "--tenant", tenant.slug, "--batch-size", "1", stdout=out)
    assert "Filled the category and attributes of 2 vectors" in out.getvalue()
    assert query._lookups(tenant.pk, MODEL, ["shoes"]).on_rows
    assert [h.product_id for h in search(tenant, q, category="shoes").hits] == [shoe.pk]
    assert [h.product_id for h in search(tenant, q, product_filter=red).hits] == [shoe.pk]
    assert Embedding.objects.filter(tenant=other_tenant, category__isnull=True).count() == 1  # left alone

    out = StringIO()
    call_command("fill_embedding_categories", stdout=out)  # carries on with what is left
    assert "Filled the category and attributes of 1 vectors" in out.getvalue()
    assert sorted(Embedding.objects.values_list("category", flat=True)) == ["mugs", "shoes", "shoes"]
    assert sorted(map(str, Embedding.objects.values_list("attributes", flat=True))) == ["{'color': 'red'}", "{}", "{}"]


def test_the_attribute_filter_follows_the_product_as_it_changes(tenant, q):
    shoe = ProductFactory(tenant=tenant, attributes={"color": "red", "price": 40})
    add(tenant, near(q, 0.2, 1), shoe)
    loose = add(tenant, near(q, 0.3, 2))
    red = ProductFilter(attributes=(("color", ("red",)),))
    cheap = filters.parse({"attributes": {"price": {"lt": 50}}})
    assert [h.product_id for h in search(tenant, q, product_filter=red).hits] == [shoe.pk]
    assert [h.product_id for h in search(tenant, q, product_filter=cheap).hits] == [shoe.pk]
    shoe.attributes = {"color": "blue", "price": 60}
    shoe.save()
    assert search(tenant, q, product_filter=red).hits == search(tenant, q, product_filter=cheap).hits == []
    other = ProductFactory(tenant=tenant, attributes={"color": "red"})
    assert assign_product(loose.media_id, other)
    assert [h.media_id for h in search(tenant, q, product_filter=red).hits] == [loose.media_id]


def test_exclude_media(tenant, q):
    first = add(tenant, near(q, 0.1, 1))
    second = add(tenant, near(q, 0.2, 2))
    assert [h.media_id for h in search(tenant, q, exclude_media_ids=[first.media_id]).hits] == [second.media_id]


def test_only_vectors_of_the_current_model(tenant, q):
    EmbeddingFactory(media=MediaFactory(tenant=tenant), model_name="old-model", vector=q)
    assert search(tenant, q).hits == []


def clustered(count: int, seed: int) -> np.ndarray:
    """Unit vectors around 40 centres, as photo embeddings group by subject."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM))
    vectors = centres[rng.integers(0, 40, count)] + 0.6 * rng.standard_normal((count, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def bulk_vectors(tenant, count: int, seed: int) -> None:
    media = Media.objects.bulk_create(
        MediaFactory.build(tenant=tenant, product=None, storage_key=f"k/{tenant.slug}/{seed}/{i}", sha256="")
        for i in range(count)
    )
    vectors = clustered(count, seed)
    Embedding.objects.bulk_create(
        (Embedding(tenant=tenant, media=m, model_name=MODEL, vector=v) for m, v in zip(media, vectors, strict=True)),
        batch_size=1000,
    )


def exact_top(tenant, vector, k: int = 10) -> list[int]:
    where, params = query._filters(tenant.pk, MODEL, None, None)
    params["query"] = query.vector_literal(vector)
    with transaction.atomic():
        # max distance 1.0 is min_score 0, as search() uses
        return [hit.media_id for hit in query._exact(where, params, k, 1.0)]


@pytest.mark.slow
def test_a_small_tenant_gets_the_same_top_10_as_an_exact_scan():
    big, small = TenantFactory(slug="big"), TenantFactory(slug="small")
    bulk_vectors(big, 1000, seed=1)
    bulk_vectors(small, 10, seed=2)  # 1% of the table
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_embedding")
    queries = [unit(v) for v in clustered(12, seed=3)]

    for vector in queries:
        assert [h.media_id for h in search(small, vector, k=10).hits] == exact_top(small, vector)


def test_the_server_pgvector_version_is_read_at_run_time():
    from catalog.vector_engine import MIN_PGVECTOR, pgvector_problem, pgvector_version

    assert pgvector_version() >= MIN_PGVECTOR  # the embedded server's: the one production needs
    assert pgvector_problem() is None


@pytest.mark.django_db
def test_the_fill_command_moves_values_stored_out_of_the_row_back_into_it(tenant):
    """Rows written before catalog migration 0016 kept a long category or
    attributes in TOAST; the command writes them again, in the row. A value
    too large for the row stays out, and is not written again on every run."""
    import base64
    import os

    long_category = base64.b64encode(os.urandom(75)).decode()  # 100 characters that do not compress
    product = ProductFactory(tenant=tenant, category=long_category, attributes={"about": "x" * 300, "color": "red"})
    huge = ProductFactory(tenant=tenant, attributes={"about": base64.b64encode(os.urandom(12_000)).decode()})

    def out_of_row() -> list[tuple[bool, bool]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_column_toast_chunk_id(category) IS NOT NULL,"
                " pg_column_toast_chunk_id(attributes) IS NOT NULL"
                " FROM catalog_embedding WHERE product_id = %s ORDER BY id",
                [product.pk],
            )
            return cursor.fetchall()

    def storage(kind: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no foreign key check pending at the ALTER
            cursor.execute(
                f"ALTER TABLE catalog_embedding ALTER COLUMN attributes SET STORAGE {kind},"
                f" ALTER COLUMN category SET STORAGE {kind}"
            )

    storage("EXTENDED")  # as the release before stored them
    add(tenant, np.ones(DIM, dtype=np.float32), product)
    storage("MAIN")
    add(tenant, -np.ones(DIM, dtype=np.float32), product)
    add(tenant, np.ones(DIM, dtype=np.float32), huge)
    assert out_of_row() == [(True, True), (False, False)]

    out = StringIO()
    call_command("fill_embedding_categories", "--dry-run", stdout=out)
    assert "1 vectors have no category or attributes yet, or keep them out of the row" in out.getvalue()
    call_command("fill_embedding_categories", stdout=out)
    assert "Filled the category and attributes of 1 vectors" in out.getvalue()
    assert out_of_row() == [(False, False), (False, False)]
    call_command("fill_embedding_categories", stdout=out)
    assert "Filled the category and attributes of 0 vectors" in out.getvalue()  # the huge one left where it must be
    red = ProductFilter(attributes=(("color", ("red",)),))
    assert len(search(tenant, np.ones(DIM), product_filter=red).hits) == 1  # one product
