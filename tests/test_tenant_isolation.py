"""Another tenant's ids are 404 on every endpoint, exactly like missing ones,
and nothing of theirs is listed, changed or deleted."""

import pytest

from catalog.models import Media, Product
from tests.conftest import error_code
from tests.factories import MediaFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def theirs(other_tenant):
    product = ProductFactory(tenant=other_tenant, sku="THEIRS-1", title="their product")
    media = MediaFactory(tenant=other_tenant, product=product)
    return product, media


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/products/{sku}/"),
        ("patch", "/api/v1/products/{sku}/"),
        ("delete", "/api/v1/products/{sku}/"),
        ("get", "/api/v1/media/{media}/"),
        ("delete", "/api/v1/media/{media}/"),
        ("post", "/api/v1/media/{media}/reprocess/"),
    ],
)
def test_other_tenants_object_is_404(api, theirs, method, path):
    product, media = theirs
    url = path.format(sku=product.sku, media=media.pk)
    response = getattr(api, method)(url, {"title": "hijacked"} if method == "patch" else None, format="json")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    product.refresh_from_db()
    media.refresh_from_db()
    assert product.title == "their product"
    assert media.status == Media.Status.PENDING


def test_lists_show_only_own_rows(api, tenant, theirs):
    ProductFactory(tenant=tenant, sku="MINE-1")
    products = api.get("/api/v1/products/").json()
    assert [p["sku"] for p in products["results"]] == ["MINE-1"]
    assert api.get("/api/v1/media/").json()["count"] == 0
    assert api.get("/api/v1/media/", {"product": "THEIRS-1"}).json()["count"] == 0


def test_upload_to_other_tenants_product_is_refused(api, theirs):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.media_files import jpeg_bytes

    upload = SimpleUploadedFile("a.jpg", jpeg_bytes(), content_type="image/jpeg")
    response = api.post("/api/v1/media/", {"file": upload, "product": "THEIRS-1"}, format="multipart")
    assert response.status_code == 404 and error_code(response) == "not_found"  # exactly like a missing one
    assert Media.objects.filter(tenant__slug="acme").count() == 0


def test_same_sku_in_two_tenants_resolves_to_own(api, tenant, theirs):
    ProductFactory(tenant=tenant, sku="THEIRS-1", title="mine, same sku")
    assert api.get("/api/v1/products/THEIRS-1/").json()["title"] == "mine, same sku"
    assert api.delete("/api/v1/products/THEIRS-1/").status_code == 204
    assert Product.objects.filter(sku="THEIRS-1").get().tenant.slug == "globex"


def test_every_api_view_is_tenant_scoped():
    """The single scoping mechanism: a new endpoint that forgets it fails here."""
    from django.urls import get_resolver

    from catalog.api.tenancy import TenantScopedMixin

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.callback

    api_views = [(route, view) for route, view in walk(get_resolver().url_patterns) if route.startswith("api/v1/")]
    assert api_views
    for route, view in api_views:
        view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
        assert view_class is not None and issubclass(view_class, TenantScopedMixin), route
