"""The admin's import and export of products (django-import-export): a file is
previewed with each row's fate and error, and only the confirmation saves it,
into the tenant chosen."""

import csv
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Product
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

IMPORT_URL = "/admin/catalog/product/import/"
CONFIRM_URL = "/admin/catalog/product/process_import/"
EXPORT_URL = "/admin/catalog/product/export/"


def csv_file(rows: list[dict], name: str = "products.csv") -> SimpleUploadedFile:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return SimpleUploadedFile(name, out.getvalue().encode(), content_type="text/csv")


def format_index(response, name: str) -> str:
    choices = response.context["form"].fields["format"].choices
    return next(str(value) for value, label in choices if label.lower() == name)


def preview(client, tenant, upload):
    form = client.get(IMPORT_URL)
    return client.post(
        IMPORT_URL,
        {"tenant": tenant.slug, "format": format_index(form, "csv"), "import_file": upload, "resource": ""},
    )


def confirm(client, response):
    confirm_form = response.context["confirm_form"]
    data = {name: field.value() for name, field in ((f.name, f) for f in confirm_form)}
    return client.post(CONFIRM_URL, data)


def test_preview_saves_nothing_and_confirm_imports_into_the_chosen_tenant(staff, tenant, other_tenant):
    ProductFactory(tenant=tenant, sku="SKU-1", title="Old title", category="shoes", attributes={"color": "red"})
    ProductFactory(tenant=other_tenant, sku="SKU-2", title="Theirs")
    upload = csv_file(
        [
            {"sku": "SKU-1", "title": "New title", "attributes": '{"color": "blue"}'},
            {"sku": "SKU-2", "title": "  Ours  ", "attributes": ""},
        ]
    )

    response = preview(staff, tenant, upload)

    assert response.status_code == 200
    result = response.context["result"]
    assert not result.has_errors() and not result.has_validation_errors()
    assert [row.import_type for row in result.rows] == ["update", "new"]
    assert Product.objects.get(tenant=tenant, sku="SKU-1").title == "Old title"  # a preview only
    assert not Product.objects.filter(tenant=tenant, sku="SKU-2").exists()

    done = confirm(staff, response)

    assert done.status_code == 302
    updated = Product.objects.get(tenant=tenant, sku="SKU-1")
    # A column the file lacks (category) keeps its stored value.
    assert (updated.title, updated.category, updated.attributes) == ("New title", "shoes", {"color": "blue"})
    created = Product.objects.get(tenant=tenant, sku="SKU-2")
    assert (created.title, created.attributes) == ("Ours", {})
    assert Product.objects.get(tenant=other_tenant, sku="SKU-2").title == "Theirs"


def test_bad_rows_are_shown_with_their_reasons_and_block_the_confirmation(staff, tenant):
    upload = csv_file(
        [
            {"sku": "GOOD-1", "title": "Fine", "attributes": "{}"},
            {"sku": "bad sku!", "title": "Spaces", "attributes": "{}"},
            {"sku": "NO-TITLE", "title": "", "attributes": "{}"},
            {"sku": "LIST", "title": "Attrs", "attributes": "[1, 2]"},
            {"sku": "BROKEN", "title": "Attrs", "attributes": "{color: red"},
        ]
    )

    response = preview(staff, tenant, upload)

    assert response.status_code == 200
    assert "confirm_form" not in response.context or response.context["confirm_form"] is None
    invalid = {row.number: " ".join(row.error.messages) for row in response.context["result"].invalid_rows}
    assert set(invalid) == {2, 3, 4, 5}
    assert "sku" in invalid[2].lower()
    assert "title" in invalid[3]
    assert "JSON object" in invalid[4]
    assert "not JSON" in invalid[5]
    page = response.content.decode()
    assert "title: this field is required" in page
    assert not Product.objects.filter(tenant=tenant).exists()


def test_reimporting_the_same_file_changes_nothing(staff, tenant):
    rows = [{"sku": "SKU-1", "title": "Boot", "category": "shoes", "attributes": '{"size": 42}'}]
    confirm(staff, preview(staff, tenant, csv_file(rows)))
    stamp = Product.objects.get(tenant=tenant, sku="SKU-1").updated_at

    again = preview(staff, tenant, csv_file(rows))

    assert [row.import_type for row in again.context["result"].rows] == ["skip"]
    confirm(staff, again)
    assert Product.objects.get(tenant=tenant, sku="SKU-1").updated_at == stamp


def test_export_then_import_round_trips_and_refuses_another_tenants_rows(staff, tenant, other_tenant):
    ProductFactory(tenant=tenant, sku="SKU-1", title="Boot", category="shoes", attributes={"color": "red", "size": 42})
    ProductFactory(tenant=other_tenant, sku="THEIRS", title="Not ours")

    form = staff.get(EXPORT_URL)
    csv_choice = next(str(v) for v, label in form.context["form"].fields["format"].choices if label.lower() == "csv")
    fields = {name: "on" for name in form.context["form"].fields if name.startswith("productresource_")}
    exported = staff.post(f"{EXPORT_URL}?tenant__id__exact={tenant.pk}", {"format": csv_choice, **fields})

    assert exported.status_code == 200
    text = exported.content.decode()
    [row] = csv.DictReader(io.StringIO(text))
    assert {**row, "attributes": json.loads(row["attributes"])} == {
        "tenant": tenant.slug,
        "sku": "SKU-1",
        "title": "Boot",
        "category": "shoes",
        "attributes": {"color": "red", "size": 42},
    }

    # Back into the same tenant: nothing to change.
    same = preview(staff, tenant, SimpleUploadedFile("p.csv", exported.content, content_type="text/csv"))
    assert [row.import_type for row in same.context["result"].rows] == ["skip"]

    # Into another tenant: each row names its own, and is refused.
    crossed = preview(staff, other_tenant, SimpleUploadedFile("p.csv", exported.content, content_type="text/csv"))
    [row] = crossed.context["result"].invalid_rows
    assert "belongs to tenant" in " ".join(row.error.messages)
    assert not Product.objects.filter(tenant=other_tenant, sku="SKU-1").exists()


def test_import_needs_the_right_to_change_products(client, tenant):
    user = get_user_model().objects.create_user("viewer", "v@example.com", "a-long-password-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_product"))
    client.force_login(user)

    assert client.get(IMPORT_URL).status_code == 403
    assert client.get(EXPORT_URL).status_code == 200
