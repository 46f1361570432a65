"""The console's search analytics: searches per day by kind, the zero-result
rate, p95 search time, the best-score histogram with the tenant's minimum
score, the text queries that found nothing and the feedback rates, overall
and per tenant; the log's days rolled up for them; and the zero-result
count on /metrics."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from catalog.models import TenantSettings
from search import search_days
from search.models import SearchDay, SearchDayRollup, SearchLog
from tests.factories import SearchFeedbackFactory, SearchLogFactory
from tests.test_health_and_metrics import scrape

PAGE = "/admin/ops/search-analytics/"


def search(tenant, *, days_ago: float = 0, **fields):
    return SearchLogFactory(tenant=tenant, created_at=timezone.now() - timedelta(days=days_ago), **fields)


@pytest.fixture
def log(tenant, other_tenant):
    """acme: 4 searches today and 1 two days ago, 1 outside the 7-day window;
    globex: 2 searches that found nothing."""
    TenantSettings.objects.filter(tenant=tenant).update(min_similarity=0.3)
    clicked = search(tenant, kind="image", best_score=0.82, took_ms=10)
    bought = search(tenant, kind="text", query_text="red shoe", best_score=0.31, took_ms=20)
    search(tenant, kind="text", query_text="  Blue Hat ", result_count=0, best_score=None, took_ms=30)
    search(tenant, kind="text", query_text="blue hat", result_count=0, best_score=None, took_ms=40, days_ago=2)
    # A page past the end found nothing, but the search did find something.
    search(tenant, kind="text", query_text="red shoe", offset=10, result_count=0, best_score=None, took_ms=50)
    search(tenant, kind="similar", best_score=0.99, took_ms=1000, days_ago=8)
    SearchFeedbackFactory(search=clicked, event="click")
    SearchFeedbackFactory(search=clicked, event="click")  # two clicks, one search
    SearchFeedbackFactory(search=bought, event="click")
    SearchFeedbackFactory(search=bought, event="add_to_cart")
    SearchFeedbackFactory(search=bought, event="purchase")
    for text in ("secret globex query", "secret globex query"):
        search(other_tenant, kind="text", query_text=text, result_count=0, best_score=None, took_ms=5)
    return {"clicked": clicked}


def test_one_tenants_figures(staff, log, tenant):
    response = staff.get(PAGE, {"tenant": tenant.slug, "days": 7})
    assert response.status_code == 200
    analytics = response.context["analytics"]
    f = analytics.figures
    assert f.searches == 5 and f.first_pages == 4 and f.zero_results == 2
    assert f.zero_result_rate == 0.5
    # Exactly 48 ms (40 + 0.8 * 10) over 10, 20, 30, 40, 50 ms; read from
    # the time bins, within one bin.
    assert f.p95_ms == pytest.approx(48, rel=0.1)
    assert f.click_rate == pytest.approx(2 / 5)
    assert f.add_to_cart_rate == pytest.approx(1 / 5) and f.purchase_rate == pytest.approx(1 / 5)

    days = {day.day: day for day in analytics.per_day}
    assert len(days) == 7
    today = timezone.now().date()
    assert days[today].by_kind == {"image": 1, "text": 3, "similar": 0, "recommend": 0}
    assert days[today - timedelta(days=2)].total == 1

    # The best score's histogram counts first pages only, in bins of 0.05.
    counts = {round(b.low, 2): b.count for b in analytics.histogram if b.count}
    assert counts == {0.8: 1, 0.3: 1}
    assert analytics.unscored_first_pages == 2
    assert analytics.min_score == 0.3
    assert analytics.zero_result_queries == [("blue hat", 2)]

    page = response.content.decode()
    assert 'id="min-score"' in page and "minimum score, 0.30" in page
    assert "secret globex query" not in page
    assert page.count('<svg class="ops-chart"') == 2


def test_the_minimum_score_line_sits_where_the_score_is(staff, log, tenant):
    chart = staff.get(PAGE, {"tenant": tenant.slug}).context["score_chart"]
    # 0.30 is the boundary between bin 5 (0.25-0.30) and bin 6 (0.30-0.35).
    sixth = chart["bars"][6].x
    assert sixth - 6 < chart["marker_x"] < sixth
    assert chart["bars"][6].segments[0].height == chart["height"]  # the tallest bin


def test_overall_figures_and_the_tenant_table(staff, log, tenant, other_tenant):
    analytics = staff.get(PAGE, {"days": 30}).context["analytics"]
    f = analytics.figures
    assert f.searches == 8 and f.zero_results == 4 and f.first_pages == 7
    assert f.click_rate == pytest.approx(2 / 8)
    assert analytics.min_score is None
    rows = {row.tenant.slug: row.figures for row in analytics.tenants}
    assert rows["acme"].searches == 6 and rows["globex"].searches == 2
    assert rows["globex"].zero_result_rate == 1 and rows["globex"].click_rate == 0
    assert rows["acme"].click_rate == pytest.approx(2 / 6)
    assert analytics.zero_result_queries[0] == ("blue hat", 2)
    assert ("secret globex query", 2) in analytics.zero_result_queries


def test_the_histogram_by_kind(staff, log, tenant):
    analytics = staff.get(PAGE, {"tenant": tenant.slug, "kind": "image"}).context["analytics"]
    assert [round(b.low, 2) for b in analytics.histogram if b.count] == [0.8]
    assert analytics.unscored_first_pages == 0


def test_an_empty_window(staff, tenant):
    response = staff.get(PAGE, {"tenant": tenant.slug, "days": 1})
    analytics = response.context["analytics"]
    assert analytics.figures.searches == 0 and analytics.figures.zero_result_rate is None
    assert analytics.figures.p95_ms is None and analytics.zero_result_queries == []
    page = response.content.decode()
    assert "No searches in this window." in page and "No scored searches in this window." in page


@pytest.mark.parametrize(
    ("query", "status"),
    [({"tenant": "nobody"}, 404), ({"days": "3"}, 400), ({"days": "x"}, 400), ({"kind": "audio"}, 400)],
)
def test_bad_choices_are_refused(staff, log, query, status):
    assert staff.get(PAGE, query).status_code == status


def test_it_needs_the_right_to_view_the_search_log(client, db, log):
    user = get_user_model().objects.create_user("viewer", "v@example.com", "a-long-password-123", is_staff=True)
    client.force_login(user)
    assert client.get(PAGE).status_code == 403
    assert "Search analytics" not in client.get("/admin/").content.decode()
    user.user_permissions.add(Permission.objects.get(codename="view_searchlog"))
    assert client.get(PAGE).status_code == 200
    assert "Search analytics" in client.get("/admin/").content.decode()


def test_metrics_count_the_searches_that_found_nothing(client, api, tenant):
    key = ("stockmind_zero_result_searches_total", (("kind", "text"),))
    searches = ("stockmind_searches_total", (("kind", "text"),))
    before = scrape(client)
    # An empty catalog: every search finds nothing.
    answer = api.post("/api/v1/search/text", {"query": "red shoe", "mode": "keyword"}, format="json")
    assert answer.status_code == 200 and answer.json()["results"] == []
    later_page = {"query": "red shoe", "mode": "keyword", "offset": 20}
    assert api.post("/api/v1/search/text", later_page, format="json").status_code == 200
    after = scrape(client)
    assert after[searches] - before.get(searches, 0) == 2
    assert after[key] - before.get(key, 0) == 1


def test_closed_days_are_read_from_their_rollup(staff, log, tenant):
    two_days_ago = (timezone.now() - timedelta(days=2)).date()
    assert not SearchDayRollup.objects.exists()
    first = staff.get(PAGE, {"tenant": tenant.slug, "days": 7}).context["analytics"]
    # The page rolled up the window's closed days it found missing, today excepted.
    rolled = set(SearchDayRollup.objects.values_list("day", flat=True))
    assert len(rolled) == 6 and timezone.now().date() not in rolled and two_days_ago in rolled
    row = SearchDay.objects.get(tenant=tenant, day=two_days_ago)
    assert (row.kind, row.searches, row.zero_results) == ("text", 1, 1)
    # Once rolled up, a day is not read from the log again; today always is.
    SearchLog.objects.filter(created_at__date=two_days_ago).delete()
    search(tenant, kind="recommend", best_score=0.5)
    again = staff.get(PAGE, {"tenant": tenant.slug, "days": 7}).context["analytics"]
    assert again.figures.searches == first.figures.searches + 1
    assert again.per_day[-3].total == 1 and again.per_day[-1].by_kind["recommend"] == 1


def test_beat_rolls_up_the_days_just_ended_again_for_late_feedback(log, tenant):
    yesterday = search(tenant, kind="image", best_score=0.72, days_ago=1)
    search_days.roll_up_recent()
    row = SearchDay.objects.get(tenant=tenant, day=yesterday.created_at.date(), kind="image")
    assert row.searches == 1 and row.with_purchase == 0 and row.score_bins[14] == 1
    SearchFeedbackFactory(search=yesterday, event="purchase")
    search_days.roll_up_recent()
    assert SearchDay.objects.get(tenant=tenant, day=row.day, kind="image").with_purchase == 1
    # Every closed day of the log's retention is rolled up, once.
    assert SearchDayRollup.objects.count() == settings.SEARCH_LOG_DAYS


def test_pruning_the_log_drops_its_old_days(log, tenant):
    old = search(tenant, days_ago=settings.SEARCH_LOG_DAYS + 3)
    search_days.roll_up(old.created_at.date())
    search_days.roll_up((timezone.now() - timedelta(days=2)).date())
    from search import search_log

    search_log.prune()
    assert set(SearchDayRollup.objects.values_list("day", flat=True)) == {(timezone.now() - timedelta(days=2)).date()}
    assert not SearchDay.objects.filter(day=old.created_at.date()).exists()


def test_beat_rolls_up_on_schedule(settings):
    from config.queues import ROLL_UP_SEARCH_DAYS_TASK

    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == ROLL_UP_SEARCH_DAYS_TASK)
    assert entry["schedule"] == settings.SEARCH_DAY_ROLLUP_SECONDS


def test_percentiles_from_the_time_bins_stay_within_a_bin():
    import numpy as np

    times = np.random.default_rng(3).lognormal(mean=3, sigma=1, size=5000)
    bins = [0] * search_days.TOOK_BINS
    for took in times:
        number = int(np.floor(np.log(max(took, search_days.TOOK_MIN_MS) / search_days.TOOK_MIN_MS) / np.log(1.1)))
        bins[min(max(number, 0), search_days.TOOK_BINS - 1)] += 1
    for q in (0.5, 0.95, 0.99):
        assert search_days.percentile(bins, q) == pytest.approx(np.quantile(times, q), rel=search_days.TOOK_RATIO - 1)
    assert search_days.percentile([0] * search_days.TOOK_BINS, 0.95) is None


def test_a_search_the_minimum_emptied_is_binned_at_the_score_it_left_out(staff, api, tenant, clip):
    import numpy as np

    from tests.catalogs import bulk_catalog

    vectors = np.random.default_rng(5).standard_normal((5, 512))
    bulk_catalog(tenant, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32))
    body = {"query": "red shoe", "mode": "vector", "min_score": 0}
    best = api.post("/api/v1/search/text", body, format="json").json()["results"][0]["score"]
    emptied = api.post("/api/v1/search/text", {**body, "min_score": 0.999}, format="json").json()
    assert emptied["results"] == []
    logged = SearchLog.objects.get(pk=emptied["search_id"])
    assert logged.best_score is None and logged.best_below_minimum == pytest.approx(best, abs=1e-6)
    # Not for a later page, nor for a search that kept something.
    assert SearchLog.objects.exclude(pk=logged.pk).get().best_below_minimum is None

    TenantSettings.objects.filter(tenant=tenant).update(min_similarity=0.999)
    analytics = staff.get(PAGE, {"tenant": tenant.slug}).context["analytics"]
    counted = [b for b in analytics.histogram if b.count]
    assert sum(b.count for b in counted) == 2 and analytics.unscored_first_pages == 0
    assert all(b.low <= best < b.high or b.high == 1.0 for b in counted)
    assert analytics.figures.zero_results == 1
