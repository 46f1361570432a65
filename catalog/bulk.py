"""Many products at once (API.md, Catalog v2: `POST /api/v1/products/bulk`,
and `manage.py import_catalog`): each row checked on its own, the good ones
upserted by sku in one statement, the bad ones reported by their index.

A row is a product as `POST /api/v1/products/` takes it: `sku` and `title`,
`category` and `attributes` optional. For a new product an omitted field
takes its default ('' and {}); for an existing one it keeps its value, so a
file of skus and titles does not wipe the attributes. A row whose fields
equal the stored product's changes nothing (`unchanged`): sending the same
rows twice updates nothing the second time. The same sku twice in one call
is an error on the later row (which of the two was meant is not ours to
guess)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, models, transaction

from catalog.models import Product, Tenant
from catalog.storable import unstorable_text

MAX_ROWS = 1000  # in one call of the API
FIELDS = ("sku", "title", "category", "attributes")
REQUIRED = ("sku", "title")


@dataclass(frozen=True)
class RowError:
    index: int  # 0-based, in the order the rows came
    sku: str | None  # the row's sku when it has a readable one
    code: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "sku": self.sku, "error": {"code": self.code, "message": self.message}}


@dataclass
class BulkResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    def add(self, other: BulkResult) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.errors += other.errors

    def as_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [error.as_json() for error in self.errors],
        }


class RowInvalid(ValueError):
    pass


@dataclass(frozen=True)
class UnreadableRow:
    """A row that could not even be read (a line of NDJSON or CSV), in its place among the others."""

    message: str


def clean_row(data: Any) -> dict[str, Any]:
    """The row's fields, checked as the product's model checks them; RowInvalid says what is wrong."""
    if isinstance(data, UnreadableRow):
        raise RowInvalid(data.message)
    if not isinstance(data, dict):
        raise RowInvalid("A product is a JSON object.")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise RowInvalid(f"Unknown field {unknown[0]!r}: a product has {', '.join(FIELDS)}.")
    # Text without the white space around it, as the API's serializers take it.
    data = {name: value.strip() if isinstance(value, str) else value for name, value in data.items()}
    missing = [name for name in REQUIRED if data.get(name) in (None, "")]
    if missing:
        raise RowInvalid(f"{missing[0]}: this field is required.")
    where = unstorable_text(data)
    if where:
        raise RowInvalid(f"{where!a}: text with a NUL character or a lone surrogate.")
    cleaned: dict[str, Any] = {}
    for name, value in data.items():
        if name == "attributes":
            if not isinstance(value, dict):
                raise RowInvalid("attributes: must be a JSON object.")
        elif not isinstance(value, str):
            raise RowInvalid(f"{name}: must be a string.")
        model_field = Product._meta.get_field(name)
        assert isinstance(model_field, models.Field)
        try:
            cleaned[name] = model_field.clean(value, None)
        except ValidationError as exc:
            raise RowInvalid(f"{name}: {' '.join(exc.messages)}") from None
    return cleaned


def read_lines(text: str) -> list[Any]:
    """NDJSON (JSON lines): one value a line, an unreadable or empty line an
    UnreadableRow in its place, so that each row's index is its line's."""
    rows: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            rows.append(UnreadableRow(f"Line {number} is empty."))
            continue
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            rows.append(UnreadableRow(f"Line {number} is not JSON: {exc}"))
    return rows


def _sku_of(data: Any) -> str | None:
    sku = data.get("sku") if isinstance(data, dict) else None
    return sku if isinstance(sku, str) and not unstorable_text(sku) else None


# One statement: new skus inserted, existing ones updated only where a field
# differs (the others are `unchanged`); xmax = 0 marks a row this statement
# inserted. Concurrent calls with the same skus serialize on the unique index.
UPSERT = """
INSERT INTO catalog_product AS p (tenant_id, sku, title, category, attributes, created_at, updated_at)
SELECT %(tenant)s, r.sku, r.title, r.category, r.attributes, now(), now()
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(sku text, title text, category text, attributes jsonb)
ON CONFLICT (tenant_id, sku) DO UPDATE
SET title = EXCLUDED.title, category = EXCLUDED.category, attributes = EXCLUDED.attributes, updated_at = now()
WHERE (p.title, p.category, p.attributes) IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.category, EXCLUDED.attributes)
RETURNING p.xmax = 0
"""


def check_rows(rows: list[Any], first_index: int = 0) -> tuple[dict[str, dict[str, Any]], list[RowError]]:
    """The good rows by sku, and an error for each bad one with its index (from `first_index`)."""
    good: dict[str, dict[str, Any]] = {}
    errors: list[RowError] = []
    for index, data in enumerate(rows, first_index):
        try:
            row = clean_row(data)
        except RowInvalid as exc:
            errors.append(RowError(index, _sku_of(data), "validation_error", str(exc)))
            continue
        if row["sku"] in good:
            errors.append(RowError(index, row["sku"], "conflict", "The same sku is on an earlier row of this import."))
            continue
        good[row["sku"]] = row
    return good, errors


def upsert_products(tenant: Tenant, rows: list[Any], first_index: int = 0) -> BulkResult:
    """Check each row and upsert the good ones by sku in `tenant`; a bad row
    is an error with its index (from `first_index`) and never blocks the others."""
    good, errors = check_rows(rows, first_index)
    result = upsert_checked(tenant, good)
    result.errors = errors
    return result


def upsert_checked(tenant: Tenant, good: dict[str, dict[str, Any]]) -> BulkResult:
    """Upsert rows check_rows found good (by sku) in `tenant`, in one statement."""
    result = BulkResult()
    if not good:
        return result
    with transaction.atomic():
        stored = {
            sku: (category, attributes)
            for sku, category, attributes in Product.objects.filter(tenant=tenant, sku__in=list(good)).values_list(
                "sku", "category", "attributes"
            )
        }
        complete = [
            {
                "sku": sku,
                "title": row["title"],
                # An omitted field: the stored value, or the default for a new product.
                "category": row.get("category", stored.get(sku, ("", {}))[0]),
                "attributes": row.get("attributes", stored.get(sku, ("", {}))[1]),
            }
            # In sku order: two imports of the same skus lock them in the same order (no deadlock).
            for sku, row in sorted(good.items())
        ]
        with connection.cursor() as cursor:
            cursor.execute(UPSERT, {"tenant": tenant.pk, "rows": json.dumps(complete)})
            inserted = [row[0] for row in cursor.fetchall()]
    result.created += sum(inserted)
    result.updated += len(inserted) - sum(inserted)
    result.unchanged += len(good) - len(inserted)
    return result
