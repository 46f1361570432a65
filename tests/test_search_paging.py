"""Search v2's `offset` / `next_offset` and `cutoff` (API.md): pages are
slices of one ranking, which never overlap or skip up to offset 900, on the
exact path and through a tenant's own HNSW index; the relative cutoff drops
what scores too far below the best result, by the tenant's default or the
request's choice."""

import numpy as np
import pytest

from search import query, tenant_indexes
from tests.catalogs import bulk_catalog
from tests.conftest import error_code
from tests.factories import TenantFactory, TenantSettingsFactory

MODEL = "clip-tiny"
TEXT_URL = "/api/v1/search/text"
PRODUCTS = 1_050  # more than the deepest page reaches


def clustered(count: int, seed: int, around: np.ndarray | None = None) -> np.ndarray:
    """Unit vectors in clusters, all on the side of `around` (a common
    direction by default): every one scores above 0 to queries made alike."""
    rng = np.random.default_rng(seed)
    if around is None:
        around = np.random.default_rng(99).standard_normal(512)
    around = around / np.linalg.norm(around)
    centres = np.random.default_rng(0).standard_normal((30, 512)) / np.sqrt(512)
    vectors = 2 * around + centres[rng.integers(0, 30, count)] + 0.8 * rng.standard_normal((count, 512)) / np.sqrt(512)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def pages(tenant, vector, k: int) -> tuple[list[int], list[int | None]]:
    """Every page from offset 0 while there is a next one: the media ids in order, and each page's next_offset."""
    seen, offsets, offset = [], [], 0
    while offset is not None:
        found = query.nearest_products(vector, tenant_id=tenant.pk, model_name=MODEL, k=k, offset=offset, min_score=0)
        seen += [hit.media_id for hit in found.hits]
        offsets.append(found.next_offset)
        offset = found.next_offset
    return seen, offsets


def exact_order(media, vectors, query_vector) -> list[int]:
    scores = vectors @ query_vector
    return [media[i].pk for i in sorted(range(len(media)), key=lambda i: (-scores[i], media[i].pk))]


@pytest.mark.django_db
def test_pages_on_the_exact_path_are_the_exact_ranking_to_offset_900():
    tenant = TenantFactory()
    vectors = clustered(PRODUCTS, seed=1)
    media = bulk_catalog(tenant, vectors)
    wanted = clustered(1, seed=2)[0]
    seen, offsets = pages(tenant, wanted, k=100)
    assert offsets == [*range(100, 1000, 100), None]  # the last page is offset 900: 1,000 in all
    assert seen == exact_order(media, vectors, wanted)[:1000]


def test_pages_through_an_own_index_never_overlap_or_skip(tenant_indexes_dropped, monkeypatch):
    monkeypatch.setattr(query, "EXACT_SCAN_MAX_VECTORS", 100)  # 1,050 vectors make a large tenant
    tenant = TenantFactory(slug="paged")
    vectors = clustered(PRODUCTS, seed=3)
    media = bulk_catalog(tenant, vectors)
    tenant_indexes.sync(model_names=[MODEL])
    assert tenant_indexes.own_indexes(tenant.pk)
    for seed in (4, 5):
        wanted = clustered(1, seed=seed)[0]
        first = query.nearest_products(wanted, tenant_id=tenant.pk, model_name=MODEL, k=50, min_score=0)
        assert first.strategy == "hnsw-tenant"
        seen, offsets = pages(tenant, wanted, k=50)
        assert offsets[-1] is None and offsets[:-1] == list(range(50, 950, 50))
        assert len(seen) == len(set(seen)) == 950  # pages to offset 900 with k=50: none overlaps
        # None skips: together they are the first 950 of one ranking, read at once.
        whole = query.rank_products(wanted, tenant_id=tenant.pk, model_name=MODEL, depth=950, page_size=50, min_score=0)
        assert seen == [hit.media_id for hit in whole.hits]
        truth = exact_order(media, vectors, wanted)
        assert len(set(seen[:50]) & set(truth[:50])) >= 45  # and it is the nearest first


@pytest.mark.django_db
def test_api_pages_carry_next_offset_and_a_short_last_page(api, tenant, clip):
    vectors = clustered(25, seed=6, around=clip.embed_texts(["anything"])[0])
    bulk_catalog(tenant, vectors)
    body = {"query": "anything", "mode": "vector", "k": 10, "min_score": 0}
    first = api.post(TEXT_URL, body, format="json").json()
    assert first["next_offset"] == 10 and len(first["results"]) == 10
    second = api.post(TEXT_URL, {**body, "offset": 10}, format="json").json()
    last = api.post(TEXT_URL, {**body, "offset": 20}, format="json").json()
    assert second["next_offset"] == 20 and last["next_offset"] is None and len(last["results"]) == 5
    ids = [r["media_id"] for page in (first, second, last) for r in page["results"]]
    assert len(ids) == len(set(ids)) == 25


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields", [{"offset": -1}, {"offset": 901}, {"offset": 950, "k": 100}, {"offset": "two"}, {"cutoff": "far"}]
)
def test_bad_paging_or_cutoff_is_refused(api, clip, fields):
    response = api.post(TEXT_URL, {"query": "shoe", **fields}, format="json")
    assert response.status_code == 400 and error_code(response) == "validation_error"
    assert set(fields) & set(response.json()["error"]["detail"])


@pytest.mark.django_db
def test_relative_cutoff_drops_what_scores_far_below_the_best(api, tenant, clip):
    wanted = clip.embed_texts(["red shoe"])[0]
    rng = np.random.default_rng(7)
    # Scores of about 0.99, 0.95, then 0.7 and 0.5 to the query.
    vectors = []
    for mix in (0.15, 0.33, 1.0, 1.7):
        noise = rng.standard_normal(512)
        noise -= (noise @ wanted) * wanted
        vector = wanted + mix * noise / np.linalg.norm(noise)
        vectors.append(vector / np.linalg.norm(vector))
    bulk_catalog(tenant, np.asarray(vectors, dtype=np.float32))
    body = {"query": "red shoe", "mode": "vector", "min_score": 0}

    def scores(**fields):
        return [r["score"] for r in api.post(TEXT_URL, {**body, **fields}, format="json").json()["results"]]

    assert len(scores()) == 4  # the tenant's default: no cutoff
    kept = scores(cutoff="relative")  # the default gap, 0.1
    assert len(kept) == 2 and kept[0] - kept[-1] <= 0.1
    TenantSettingsFactory(tenant=tenant, search_cutoff="relative", relative_cutoff=0.4)
    assert len(scores()) == 3  # the tenant's default now, with its gap
    assert len(scores(cutoff="none")) == 4  # the request's choice wins
