"""POST /api/v1/search/recommend (API.md, Search v2): results nearest to the
positive examples and away from the negative ones, never an example (nor
another picture of an example's product); another tenant's id is a 404, an
example without vectors yet a 409."""

import numpy as np
import pytest

from catalog.models import Embedding, Media
from tests.catalogs import bulk_catalog
from tests.conftest import error_code
from tests.factories import MediaFactory, TenantFactory

URL = "/api/v1/search/recommend"


def unit(vector):
    return vector / np.linalg.norm(vector)


@pytest.fixture
def line(tenant, clip):
    """Twenty-one products along the way from direction `a` (index 0) to `b` (index 20)."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(512), rng.standard_normal(512)
    vectors = [unit((20 - n) / 20 * unit(a) + n / 20 * unit(b)) for n in range(21)]
    return bulk_catalog(tenant, np.asarray(vectors, dtype=np.float32))


def recommend(api, **body):
    return api.post(URL, {"min_score": 0, **body}, format="json")


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [r["media_id"] for r in response.json()["results"]]


@pytest.mark.django_db
def test_results_are_near_the_positives_and_never_an_example(api, line):
    found = ids(recommend(api, positive=[line[10].pk], k=4))
    assert set(found) == {line[8].pk, line[9].pk, line[11].pk, line[12].pk}
    # Away from the negative: towards a's end, past the positive.
    away = ids(recommend(api, positive=[line[10].pk], negative=[line[14].pk], k=3))
    assert line[14].pk not in away and line[10].pk not in away
    assert set(away) <= {m.pk for m in line[:10]}


@pytest.mark.django_db
def test_another_picture_of_an_examples_product_is_not_recommended(api, line, tenant):
    sibling = MediaFactory(tenant=tenant, product=line[5].product)
    vector = Embedding.objects.get(media=line[5]).vector
    Embedding.objects.create(
        tenant=tenant, media=sibling, product=sibling.product, model_name="clip-tiny", vector=vector
    )
    found = ids(recommend(api, positive=[line[5].pk], k=5))
    assert sibling.pk not in found and line[5].pk not in found


@pytest.mark.django_db
def test_recommend_takes_the_filter_and_pages(api, line):
    first = recommend(api, positive=[line[0].pk], k=5).json()
    second = recommend(api, positive=[line[0].pk], k=5, offset=5).json()
    both = ids(recommend(api, positive=[line[0].pk], k=10))
    assert [r["media_id"] for r in first["results"] + second["results"]] == both
    skus = [line[20].product.sku]
    assert ids(recommend(api, positive=[line[0].pk], filter={"sku": skus})) == [line[20].pk]


@pytest.mark.django_db
def test_another_tenants_example_is_404(api, line):
    theirs = MediaFactory(tenant=TenantFactory(slug="rival"))
    for body in ({"positive": [theirs.pk]}, {"positive": [line[0].pk], "negative": [theirs.pk]}):
        response = recommend(api, **body)
        assert response.status_code == 404 and error_code(response) == "not_found"


@pytest.mark.django_db
def test_an_example_without_vectors_is_409(api, line, tenant):
    pending = MediaFactory(tenant=tenant, status=Media.Status.PENDING)
    response = recommend(api, positive=[line[0].pk, pending.pk])
    assert response.status_code == 409 and error_code(response) == "conflict"
    assert str(pending.pk) in response.json()["error"]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [{}, {"positive": []}, {"positive": list(range(1, 22))}, {"positive": ["x"]}, {"positive": [1], "other": 2}],
)
def test_bad_examples_are_refused(api, clip, body):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400 and error_code(response) == "validation_error"
