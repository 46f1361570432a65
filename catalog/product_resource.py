"""Products in and out of the admin as files (django-import-export): the
import previews every row, shows each bad row's reason, and saves nothing
until the operator confirms.

A row is held to the same rules as `POST /api/v1/products/bulk` (catalog/bulk.py
`clean_row`): the same fields, trimmed text, attributes a JSON object. Rows go
into the one tenant the operator chose and are matched by sku within it; a
column the file lacks keeps the stored value. An exported file names each
row's tenant, and a row of another tenant is refused rather than copied
across."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from import_export import fields, resources, widgets

from catalog.bulk import FIELDS, RowInvalid, clean_row
from catalog.models import Product, Tenant

TENANT_COLUMN = "tenant"


class AttributesWidget(widgets.Widget):
    """Attributes as a JSON object in one cell; a file format that carries objects (JSON) passes them through."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        return value  # read and checked in ProductResource.before_import_row

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return json.dumps(value or {}, ensure_ascii=False)


def _read_attributes(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise RowInvalid(f"attributes: not JSON ({exc}).") from None
    return value


class ProductResource(resources.ModelResource):
    tenant = fields.Field(attribute="tenant__slug", column_name=TENANT_COLUMN, readonly=True)
    attributes = fields.Field(attribute="attributes", column_name="attributes", widget=AttributesWidget())

    class Meta:
        model = Product
        fields = (TENANT_COLUMN, *FIELDS)
        export_order = (TENANT_COLUMN, *FIELDS)
        import_id_fields = ("sku",)
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True

    def __init__(self, import_tenant: Tenant | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.import_tenant = import_tenant

    def get_queryset(self) -> Any:
        # Lookups by sku during an import stay inside the chosen tenant.
        if self.import_tenant is None:
            return Product.objects.none()
        return Product.objects.filter(tenant=self.import_tenant)

    def init_instance(self, row: Any = None) -> Product:
        assert self.import_tenant is not None, "an import needs its tenant"
        return Product(tenant=self.import_tenant)

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        """Check the row as the bulk endpoint does and put its cleaned values back; a bad row is invalid."""
        assert self.import_tenant is not None, "an import needs its tenant"
        owner = str(row.get(TENANT_COLUMN) or "").strip()
        if owner and owner != self.import_tenant.slug:
            chosen = self.import_tenant.slug
            raise ValidationError(f"This row belongs to tenant {owner!r}, not {chosen!r}, the tenant chosen.")
        data = {name: row[name] for name in FIELDS if name in row}
        try:
            if "attributes" in data:
                data["attributes"] = _read_attributes(data["attributes"])
            for name in ("category",):  # an empty cell in a text column is a blank value, not a missing one
                if data.get(name) is None and name in data:
                    data[name] = ""
            cleaned = clean_row(data)
        except RowInvalid as exc:
            raise ValidationError(str(exc)) from None
        for name, value in cleaned.items():
            row[name] = value
