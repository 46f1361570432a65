"""Constraints live in the database, not only in Python."""

import pytest
from django.db import IntegrityError, connection, transaction

from catalog.models import Media, Product, TenantSettings
from tests.factories import EmbeddingFactory, MediaFactory, ProductFactory, TenantFactory, unit_vector

pytestmark = pytest.mark.django_db


def violates(sql: str, params: list) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    except IntegrityError:
        return True
    return False


def test_sku_unique_per_tenant_in_the_database(tenant, other_tenant):
    ProductFactory(tenant=tenant, sku="A1")
    ProductFactory(tenant=other_tenant, sku="A1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(tenant=tenant, sku="A1", title="dup")


def test_storage_key_unique_per_tenant(tenant):
    MediaFactory(tenant=tenant, storage_key="clients/acme/x.jpg")
    with pytest.raises(IntegrityError), transaction.atomic():
        MediaFactory(tenant=tenant, storage_key="clients/acme/x.jpg")


def test_status_kind_and_tenant_are_enforced_by_the_database(tenant):
    media = MediaFactory(tenant=tenant)
    assert violates("UPDATE catalog_media SET status = 'done' WHERE id = %s", [media.pk])
    assert violates("UPDATE catalog_media SET kind = 'audio' WHERE id = %s", [media.pk])
    assert violates("UPDATE catalog_media SET tenant_id = NULL WHERE id = %s", [media.pk])
    assert violates("UPDATE catalog_product SET sku = 'bad sku/..' WHERE id = %s", [media.product_id])


def test_thresholds_ranges_are_enforced_by_the_database(tenant):
    thresholds = TenantSettings.objects.get(tenant=tenant)
    assert violates("UPDATE catalog_tenantsettings SET min_similarity = 1.5 WHERE id = %s", [thresholds.pk])
    assert violates("UPDATE catalog_tenantsettings SET hnsw_ef_search = 5 WHERE id = %s", [thresholds.pk])


def test_one_embedding_per_image_and_model(tenant):
    media = MediaFactory(tenant=tenant)
    EmbeddingFactory(media=media)
    with pytest.raises(IntegrityError), transaction.atomic():
        EmbeddingFactory(media=media)


def test_vectors_are_512_d_with_no_hnsw_index_over_every_tenant():
    # A large tenant's own index is built by search/tenant_indexes.py; one
    # over all rows would be a second graph every insert goes into.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam"
            " WHERE i.indrelid = 'catalog_embedding'::regclass AND a.amname = 'hnsw' AND i.indpred IS NULL"
        )
        [hnsw_indexes] = cursor.fetchone()
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'catalog_embedding'::regclass AND attname = 'vector'"
        )
        [column_type] = cursor.fetchone()
    assert hnsw_indexes == 0
    assert column_type == "vector(512)"


def test_vector_round_trip_and_cosine_order(tenant):
    from pgvector.django import CosineDistance

    from catalog.models import Embedding

    near, far = MediaFactory(tenant=tenant), MediaFactory(tenant=tenant)
    query = unit_vector(1)
    EmbeddingFactory(media=near, vector=query)
    EmbeddingFactory(media=far, vector=unit_vector(2))
    ranked = Embedding.objects.order_by(CosineDistance("vector", query)).values_list("media_id", flat=True)
    assert list(ranked) == [near.pk, far.pk]


def test_stuck_queryset(tenant):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    old = MediaFactory(tenant=tenant, status=Media.Status.PROCESSING, processing_started_at=now - timedelta(hours=1))
    MediaFactory(tenant=tenant, status=Media.Status.PROCESSING, processing_started_at=now - timedelta(minutes=1))
    MediaFactory(tenant=tenant, status=Media.Status.PENDING)
    # The tenant's settings hold the default: 30 minutes.
    assert list(Media.objects.stuck(now)) == [old]


def test_factories_cover_every_model():
    TenantFactory()
    from tests import factories

    made = {
        factory._meta.model
        for factory in vars(factories).values()
        if isinstance(factory, type) and hasattr(factory, "_meta") and getattr(factory._meta, "model", None)
    }
    from django.apps import apps

    ours = {
        m
        for m in apps.get_models()
        if m._meta.app_label in {"catalog", "search", "media_pipeline", "ops_console"} and not m._meta.proxy
    }
    assert ours <= made, ours - made


def test_a_tenant_made_without_its_settings_gets_the_defaults_everywhere(client, clip):
    """A tenant saved outside create_tenant (a shell, a fixture, an older
    release during an upgrade) has no settings row: the stuck rule falls back
    to the defaults, and the first reader stores them."""
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import Tenant, TenantSettings
    from tests.factories import ApiKeyFactory

    bare = Tenant.objects.create(slug="bare", name="Bare")
    now = timezone.now()
    old = MediaFactory(tenant=bare, status=Media.Status.PROCESSING, processing_started_at=now - timedelta(minutes=31))
    MediaFactory(tenant=bare, status=Media.Status.PROCESSING, processing_started_at=now - timedelta(minutes=29))
    assert list(Media.objects.stuck(now)) == [old]  # the default 30 minutes

    key = ApiKeyFactory(tenant=bare)
    response = client.post(
        "/api/v1/search/text",
        {"query": "shoe"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key.plaintext}",
    )
    assert response.status_code == 200
    assert TenantSettings.objects.get(tenant=bare).min_similarity == TenantSettings.default("min_similarity")
