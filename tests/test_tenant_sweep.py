"""The tenant boundary, swept: every API route, every admin list and every
management command that takes a tenant, driven by acme with globex's ids,
SKUs and slug. Nothing of globex is read, changed or counted.

Both tenants hold the same catalog (the same SKUs, the same vectors), so a
missing tenant filter anywhere shows up as globex's rows in acme's answers.
"""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.urls import get_resolver
from django.utils import timezone

from catalog.models import ApiKey, Media, Product, Tenant
from tests.conftest import client_for, error_code
from tests.factories import (
    ApiKeyFactory,
    EmbeddingFactory,
    MediaFactory,
    ProductFactory,
    RecognizerModelFactory,
    RecognizerSuggestionFactory,
    SearchFeedbackFactory,
    TenantSettingsFactory,
    VideoFrameFactory,
    WebhookAttemptFactory,
)
from tests.media_files import jpeg_bytes

pytestmark = pytest.mark.django_db


def build_catalog(tenant: Tenant, vector: np.ndarray, model_name: str) -> dict:
    shared = ProductFactory(tenant=tenant, sku="SHARED-1", title=f"{tenant.slug} shared", category="shoes")
    own = ProductFactory(tenant=tenant, sku=f"{tenant.slug.upper()}-ONLY", category="shoes")
    ready = MediaFactory(tenant=tenant, product=shared, status=Media.Status.READY)
    EmbeddingFactory(media=ready, vector=vector, model_name=model_name)
    video = MediaFactory(tenant=tenant, product=own, kind=Media.Kind.VIDEO, status=Media.Status.READY)
    frame = VideoFrameFactory(media=video, tenant=tenant)
    EmbeddingFactory(media=video, frame=frame, vector=vector, model_name=model_name)
    failed = MediaFactory(tenant=tenant, product=own, status=Media.Status.FAILED, error="corrupt", attempts=1)
    stuck = MediaFactory(
        tenant=tenant,
        product=own,
        status=Media.Status.PROCESSING,
        claim_token="lost",
        attempts=1,
        processing_started_at=timezone.now() - timezone.timedelta(hours=3),
    )
    # A second photo of each product: enough for the recognizer to train on.
    rng = np.random.default_rng(len(tenant.slug))
    for product in (shared, own):
        extra = vector + rng.normal(0, 0.05, vector.shape).astype(np.float32)
        photo = MediaFactory(tenant=tenant, product=product, status=Media.Status.READY)
        EmbeddingFactory(media=photo, vector=extra / np.linalg.norm(extra), model_name=model_name)
    TenantSettingsFactory(tenant=tenant)
    # An unassigned photo the recognizer suggests a product for.
    loose = MediaFactory(tenant=tenant, product=None, status=Media.Status.READY)
    recognizer = RecognizerModelFactory(tenant=tenant, is_active=True)
    candidate = {"product": shared.pk, "sku": shared.sku, "title": shared.title, "confidence": 0.5}
    RecognizerSuggestionFactory(media=loose, recognizer=recognizer, candidates=[candidate])
    key = ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.WRITE)
    search = SearchFeedbackFactory(search__tenant=tenant, media=ready, product=shared).search
    # A webhook endpoint with a delivery that was attempted once.
    attempt = WebhookAttemptFactory(
        delivery__endpoint__tenant=tenant, delivery__endpoint__url=f"https://93.184.216.34/{tenant.slug}"
    )
    return {
        "webhook": attempt.delivery.endpoint,
        "ready": ready,
        "video": video,
        "failed": failed,
        "stuck": stuck,
        "loose": loose,
        "key": key,
        "search": search,
    }


@pytest.fixture
def catalogs(tenant, other_tenant, clip):
    from search.service import text_vector

    vector = text_vector("red running shoe")
    return build_catalog(tenant, vector, clip.model_name), build_catalog(other_tenant, vector, clip.model_name)


def state_of(tenant: Tenant) -> dict[str, list]:
    """Every row of every model that belongs to `tenant`, field by field."""
    rows = {}
    for model in apps.get_models():
        fields = {f.name for f in model._meta.get_fields()}
        if "tenant" in fields:
            rows[model._meta.label] = list(model.objects.filter(tenant=tenant).order_by("pk").values())
        elif model is Tenant:
            rows["tenant"] = list(Tenant.objects.filter(pk=tenant.pk).values())
    return rows


@pytest.fixture
def theirs_untouched(catalogs, other_tenant):
    """Asserts at the end of the test that nothing of globex changed."""
    before = state_of(other_tenant)
    yield catalogs[1]
    after = state_of(other_tenant)
    for label, rows in before.items():
        assert after[label] == rows, f"{label} of globex changed"


# -- the API --------------------------------------------------------------------

# Every route under /api/v1/ and what acme sends to it with globex's ids. A new
# route fails test_the_sweep_covers_every_api_route until it is added here.
ROUTES = {
    "api/v1/^products/$": [("get", "/api/v1/products/?q=SHARED"), ("post", "/api/v1/products/")],
    "api/v1/products/bulk": [("post", "/api/v1/products/bulk")],
    "api/v1/^products/(?P<sku>[A-Za-z0-9][A-Za-z0-9._-]{0,63})/$": [
        ("get", "/api/v1/products/GLOBEX-ONLY/"),
        ("patch", "/api/v1/products/GLOBEX-ONLY/"),
        ("delete", "/api/v1/products/GLOBEX-ONLY/"),
        ("put", "/api/v1/products/GLOBEX-ONLY/"),
    ],
    "api/v1/^media/$": [("get", "/api/v1/media/?product=GLOBEX-ONLY"), ("post", "/api/v1/media/")],
    "api/v1/^media/uploads/$": [("post", "/api/v1/media/uploads/")],
    r"api/v1/^media/(?P<pk>\d+)/$": [("get", "/api/v1/media/{ready}/"), ("delete", "/api/v1/media/{ready}/")],
    r"api/v1/^media/(?P<pk>\d+)/reprocess/$": [("post", "/api/v1/media/{failed}/reprocess/")],
    "api/v1/^webhooks/$": [("get", "/api/v1/webhooks/"), ("post", "/api/v1/webhooks/")],
    r"api/v1/^webhooks/(?P<pk>\d+)/$": [("delete", "/api/v1/webhooks/{webhook}/")],
    "api/v1/search/image": [("post", "/api/v1/search/image")],
    "api/v1/search/text": [("post", "/api/v1/search/text")],
    "api/v1/search/similar/<int:media_id>": [
        ("get", "/api/v1/search/similar/{ready}"),
        ("get", "/api/v1/search/similar/{video}"),
    ],
    "api/v1/search/recommend": [("post", "/api/v1/search/recommend")],
    "api/v1/search/feedback": [("post", "/api/v1/search/feedback")],
}


def api_routes() -> set[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern)

    return {route for route in walk(get_resolver().url_patterns) if route.startswith("api/v1/")}


def test_the_sweep_covers_every_api_route():
    assert api_routes() == set(ROUTES)


def body_for(path: str, theirs: dict):
    """What acme sends: globex's SKU wherever a request names a product."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    photo = SimpleUploadedFile("p.jpg", jpeg_bytes(64, 48, seed=5), content_type="image/jpeg")
    if path == "/api/v1/media/":
        return {"file": photo, "product": "GLOBEX-ONLY"}, "multipart"
    if path == "/api/v1/search/image":
        return {"file": photo, "k": 50, "min_score": 0}, "multipart"
    if path == "/api/v1/media/uploads/":
        return {"product": "GLOBEX-ONLY", "filename": "a.jpg", "content_type": "image/jpeg"}, "json"
    if path == "/api/v1/search/text":
        return {"query": "red running shoe", "k": 50, "min_score": 0}, "json"
    if path == "/api/v1/products/":
        return {"sku": "GLOBEX-ONLY", "title": "mine now"}, "json"
    if path == "/api/v1/webhooks/":
        return {"url": "https://93.184.216.34/acme", "events": ["media.ready"]}, "json"
    if path == "/api/v1/products/bulk":
        return [{"sku": "GLOBEX-ONLY", "title": "mine now"}, {"sku": "SHARED-1", "title": "mine now"}], "json"
    if path == "/api/v1/search/recommend":
        return {"positive": [theirs["ready"].pk], "negative": [theirs["video"].pk], "min_score": 0}, "json"
    if path == "/api/v1/search/feedback":
        return {"search_id": str(theirs["search"].pk), "event": "click", "media_id": theirs["ready"].pk}, "json"
    return {"title": "hijacked", "sku": "GLOBEX-ONLY"}, "json"


def leaks(payload, theirs: dict, other_tenant: Tenant) -> list[str]:
    """globex's ids, SKUs, titles or slug anywhere in a response body."""
    text = json.dumps(payload)
    found = [word for word in ("GLOBEX-ONLY", "globex shared", other_tenant.slug) if word in text]
    their_media = {theirs[name].pk for name in ("ready", "video", "failed", "stuck", "loose")}

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key in ("id", "media_id") and value in their_media:
            found.append(f"{key}={value}")

    walk(payload)
    return found


@pytest.mark.parametrize(
    ("method", "template"),
    [call for calls in ROUTES.values() for call in calls],
    ids=[f"{m} {t}" for calls in ROUTES.values() for m, t in calls],
)
def test_acme_with_globex_ids_reads_and_changes_nothing_of_globex(
    api, tenant, other_tenant, theirs_untouched, s3_signing, method, template
):
    theirs = theirs_untouched
    path = template.format(**{name: theirs[name].pk for name in ("ready", "video", "failed", "webhook")})
    data, fmt = body_for(path.split("?")[0], theirs)
    if method == "get":
        response = api.get(path)
    else:
        response = getattr(api, method)(path, data, format=fmt)

    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert error_code(response) in (
            "not_found",
            "validation_error",
            "method_not_allowed",
            "conflict",
        ), response.content
    elif path in ("/api/v1/products/", "/api/v1/products/bulk"):
        # SKUs are per tenant: acme may have a GLOBEX-ONLY of its own.
        assert Product.objects.get(sku="GLOBEX-ONLY", title="mine now").tenant == tenant
        if path.endswith("bulk"):  # and its own SHARED-1 is the one changed
            assert response.json()["created"] == response.json()["updated"] == 1, response.json()
    else:
        # Lists and searches answer, from acme's catalog only.
        assert leaks(response.json(), theirs, other_tenant) == [], response.json()
    if template.startswith(("/api/v1/products/GLOBEX", "/api/v1/media/{", "/api/v1/webhooks/{")):
        assert response.status_code in (404, 405)


def test_searches_find_the_same_vectors_of_acme_only(api, catalogs, other_tenant):
    mine, theirs = catalogs
    response = api.post("/api/v1/search/text", {"query": "red running shoe", "k": 50, "min_score": 0}, format="json")
    skus = [hit["product"]["sku"] for hit in response.json()["results"]]
    assert sorted(skus) == ["ACME-ONLY", "SHARED-1"]
    assert leaks(response.json(), theirs, other_tenant) == []
    similar = api.get(f"/api/v1/search/similar/{mine['ready'].pk}", {"k": 50, "min_score": 0}).json()
    assert sorted(hit["product"]["sku"] for hit in similar["results"]) == ["ACME-ONLY", "SHARED-1"]


def test_counts_are_acme_only(api, catalogs):
    products = api.get("/api/v1/products/").json()
    assert products["count"] == 2
    assert {p["sku"]: p["media_count"] for p in products["results"]} == {"ACME-ONLY": 4, "SHARED-1": 2}
    assert api.get("/api/v1/media/").json()["count"] == 7
    assert api.get("/api/v1/media/", {"status": "failed"}).json()["count"] == 1


def test_globex_key_with_acme_header_is_refused(catalogs, tenant):
    _, theirs = catalogs
    response = client_for(theirs["key"]).get("/api/v1/products/", HTTP_X_TENANT_SLUG=tenant.slug)
    assert response.status_code == 403 and error_code(response) == "tenant_mismatch"


# -- the admin ------------------------------------------------------------------


def tenant_lists():
    """Every admin changelist of a model with a tenant, and how it filters by one."""
    from django.contrib import admin

    for model in admin.site._registry:
        fields = {f.name for f in model._meta.get_fields()}
        if "tenant" in fields:
            yield model, f"/admin/{model._meta.app_label}/{model._meta.model_name}/", "tenant__id__exact"
        elif "tenant_slug" in fields:
            yield model, f"/admin/{model._meta.app_label}/{model._meta.model_name}/", "tenant_slug"


TENANT_LISTS = list(tenant_lists())


def test_every_tenant_owned_model_has_an_admin_list():
    owned = {m for m in apps.get_models() if "tenant" in {f.name for f in m._meta.get_fields()}}
    # Proxies (stuck, failed) count as their concrete model's lists.
    listed = {m._meta.concrete_model for m, _, _ in TENANT_LISTS}
    assert {m._meta.concrete_model for m in owned} <= listed


@pytest.mark.parametrize(("model", "url", "param"), TENANT_LISTS, ids=[url for _, url, _ in TENANT_LISTS])
def test_admin_lists_filtered_to_acme_show_and_count_acme_only(
    staff, tenant, other_tenant, theirs_untouched, model, url, param
):
    response = staff.get(url, {param: tenant.pk if param.endswith("exact") else tenant.slug})
    assert response.status_code == 200
    changelist = response.context["cl"]
    shown = list(changelist.result_list)
    owner = "tenant_id" if param.endswith("exact") else "tenant_slug"
    acme = tenant.pk if owner == "tenant_id" else tenant.slug
    assert all(getattr(row, owner) == acme for row in shown)
    assert changelist.result_count == len(shown) == changelist.queryset.count()


def test_admin_reprocess_across_an_acme_filter_leaves_globex(staff, tenant, theirs_untouched):
    staff.post(
        f"/admin/catalog/media/?status__exact=failed&tenant__id__exact={tenant.pk}",
        {"action": "reprocess", "select_across": "1", "_selected_action": ["0"]},
    )
    assert Media.objects.filter(tenant=tenant, status=Media.Status.PENDING).count() == 1


def test_dashboard_for_acme_counts_acme_only(staff, tenant, catalogs):
    dashboard = staff.get("/admin/ops/", {"tenant": "acme"}).context["dashboard"]
    assert dashboard.figures.by_status == {"pending": 0, "processing": 1, "ready": 5, "failed": 1}
    assert dashboard.figures.stuck == 1


# -- management commands --------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.parametrize(
    "args",
    [
        ("reprocess_failed", "--tenant", "acme"),
        ("requeue_stuck", "--tenant", "acme"),
        ("pipeline_status", "--tenant", "acme"),
        ("cleanup_orphans", "--tenant", "acme"),
        ("create_api_key", "acme", "--scope", "write"),
        ("train_recognizer", "acme", "--inline"),
        ("reembed", "--tenant", "acme", "--model", "{tiny_model}", "--dry-run"),
    ],
    ids=lambda args: args[0],
)
def test_commands_for_acme_leave_globex_alone(tenant, theirs_untouched, broker, tiny_model, args):
    before = state_of(tenant)
    output = run(*(arg.format(tiny_model=tiny_model) for arg in args))
    assert "globex" not in output
    if args[0] in ("reprocess_failed", "requeue_stuck"):
        assert state_of(tenant) != before  # acme's item was taken


def test_acme_recognizer_learns_acme_products_only(tenant, catalogs, broker):
    from search.models import RecognizerModel

    run("train_recognizer", "acme", "--inline")
    trained = RecognizerModel.objects.filter(tenant=tenant).latest("version")
    assert trained.status == RecognizerModel.Status.READY, trained.error
    # Two products and four labelled media of acme; globex holds as many again.
    assert trained.classes == 2 and trained.train_media + trained.test_media == 4


def test_pipeline_status_for_acme_counts_acme_only(tenant, catalogs, broker):
    output = run("pipeline_status", "--tenant", "acme")
    names = {"pending", "processing", "ready", "failed", "stuck", "review"}
    counts = dict(words for words in map(str.split, output.splitlines()) if words[:1] and words[0] in names)
    assert counts == {"pending": "0", "processing": "1", "ready": "5", "failed": "1", "stuck": "1", "review": "1"}


@pytest.mark.parametrize("command", ["reprocess_failed", "requeue_stuck", "pipeline_status", "cleanup_orphans"])
def test_commands_refuse_an_unknown_tenant(db, command):
    with pytest.raises(CommandError, match="nobody"):
        run(command, "--tenant", "nobody")


def test_a_new_key_for_acme_opens_acme_only(tenant, catalogs):
    output = run("create_api_key", "acme", "--scope", "read")
    plaintext = next(word for word in output.split() if word.startswith("sm_"))
    client = client_for(type("Key", (), {"plaintext": plaintext})())
    assert {p["sku"] for p in client.get("/api/v1/products/").json()["results"]} == {"ACME-ONLY", "SHARED-1"}
    assert client.get("/api/v1/products/GLOBEX-ONLY/").status_code == 404
    assert Product.objects.filter(tenant__slug="globex").count() == 2
