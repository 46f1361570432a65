"""Every search answers a `search_id` and is logged (SearchLog); POST
/api/v1/search/feedback records a shopper's event on its results, for the
search's own tenant only; the log is pruned after SEARCH_LOG_DAYS by beat."""

from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone

from search import search_log
from search.models import SearchFeedback, SearchLog
from tests.catalogs import bulk_catalog
from tests.conftest import client_for, error_code
from tests.factories import ApiKeyFactory, SearchFeedbackFactory, SearchLogFactory, TenantFactory

URL = "/api/v1/search/feedback"


@pytest.fixture
def searched(api, tenant, clip):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((5, 512))
    media = bulk_catalog(tenant, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32))
    body = {"query": "red shoe", "mode": "vector", "min_score": 0, "filter": {"category": "shoes"}, "k": 3}
    answer = api.post("/api/v1/search/text", body, format="json").json()
    return answer, media


@pytest.mark.django_db
def test_each_search_is_logged_under_its_search_id(api, searched, tenant):
    answer, media = searched
    logged = SearchLog.objects.get(pk=answer["search_id"])
    assert logged.tenant == tenant and logged.kind == "text" and logged.mode == "vector"
    assert logged.query_text == "red shoe" and logged.filters == {"category": ["shoes"]}
    assert logged.result_count == 3 and logged.k == 3
    assert logged.best_score == pytest.approx(answer["results"][0]["score"], abs=1e-6)
    similar = api.get(f"/api/v1/search/similar/{media[0].pk}").json()
    assert SearchLog.objects.get(pk=similar["search_id"]).kind == "similar"


@pytest.mark.django_db
def test_feedback_is_recorded_for_the_search(read_api, searched):
    answer, _ = searched
    shown = answer["results"][0]
    response = read_api.post(
        URL, {"search_id": answer["search_id"], "event": "click", "media_id": shown["media_id"]}, format="json"
    )
    assert response.status_code == 202
    sku = shown["product"]["sku"]
    purchase = {"search_id": answer["search_id"], "event": "purchase", "product": sku}
    assert read_api.post(URL, purchase, format="json").status_code == 202
    events = {(f.event, f.media_id, f.product.sku if f.product else None) for f in SearchFeedback.objects.all()}
    assert events == {("click", shown["media_id"], None), ("purchase", None, sku)}


@pytest.mark.django_db
def test_another_tenants_or_an_unknown_search_is_404(searched, other_tenant):
    answer, _ = searched
    other = client_for(ApiKeyFactory(tenant=other_tenant))
    for search_id in (answer["search_id"], "3f0c1a52-0000-4000-8000-000000000000", "not-an-id"):
        response = other.post(URL, {"search_id": search_id, "event": "click"}, format="json")
        assert response.status_code == 404 and error_code(response) == "not_found"
    assert not SearchFeedback.objects.exists()


@pytest.mark.django_db
def test_feedback_naming_another_tenants_media_or_product_is_404(api, searched):
    answer, _ = searched
    theirs = bulk_catalog(TenantFactory(slug="rival"), np.eye(1, 512, dtype=np.float32))[0]
    for extra in ({"media_id": theirs.pk}, {"product": theirs.product.sku}):
        response = api.post(URL, {"search_id": answer["search_id"], "event": "click", **extra}, format="json")
        assert response.status_code == 404, extra
    assert not SearchFeedback.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", [{"event": "click"}, {"search_id": "x", "event": "like"}, {"search_id": "x", "event": "click", "more": 1}]
)
def test_bad_feedback_is_refused(api, body):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400 and error_code(response) == "validation_error"


@pytest.mark.django_db
def test_the_log_is_pruned_after_its_days_with_its_feedback(searched, tenant):
    answer, _ = searched
    old = SearchLogFactory(
        tenant=tenant, created_at=timezone.now() - timedelta(days=settings.SEARCH_LOG_DAYS, minutes=1)
    )
    SearchFeedbackFactory(search=old)
    assert search_log.prune(batch_size=1) == 1
    assert list(SearchLog.objects.values_list("pk", flat=True)) == [SearchLog.objects.get(pk=answer["search_id"]).pk]
    assert not SearchFeedback.objects.exists()


@pytest.mark.django_db
def test_beat_runs_the_pruning_task(tenant):
    from config.queues import PRUNE_SEARCH_LOG_TASK
    from search.tasks import prune_search_log

    entry = next(entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == PRUNE_SEARCH_LOG_TASK)
    assert entry["schedule"] == settings.SEARCH_LOG_PRUNE_SECONDS
    SearchLogFactory(tenant=tenant, created_at=timezone.now() - timedelta(days=settings.SEARCH_LOG_DAYS + 1))
    assert prune_search_log.apply().get() == 1 and not SearchLog.objects.exists()
