"""A search's filter on the product (API.md, Search v2): its category (one or
any of several), its sku (any of several) and its attributes (a value, any of
several values, or a numeric range), all of which must hold.

`parse` turns the client's JSON into a `ProductFilter`, refusing what it does
not know with the path of the offending part; `sql` turns one into conditions
on the vector rows of search/query.py, so that the filter is applied inside the
vector query (an HNSW scan checks them as it goes) rather than to its top k.
A filter that names any product field never matches media without a product.

Attribute values compare as JSON: `{"size": 42}` matches the number 42, not the
string "42". Equality and any-of are containment tests (`attributes @> ...`,
which a GIN index answers: a large tenant's over its rows' attributes, or the
products'; inside an HNSW scan the same test as `jsonb_contains()`, which no
index answers: sql()); ranges apply to numbers only."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# Bounds that keep a filter, and the SQL made of it, small.
MAX_VALUES = 100  # in one any-of list
MAX_ATTRIBUTES = 20
MAX_TEXT = 300
RANGE_OPERATORS = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}
FIELDS = ("category", "sku", "attributes")

Scalar = str | int | float | bool


class FilterError(ValueError):
    """What is wrong, and where: `path` is the part of the filter, e.g. "attributes.size"."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Range:
    bounds: tuple[tuple[str, Decimal], ...]  # (operator, value), e.g. (("gte", 10), ("lt", 20))


@dataclass(frozen=True)
class ProductFilter:
    categories: tuple[str, ...] | None = None
    skus: tuple[str, ...] | None = None
    # name -> the values any of which it may equal, or a range
    attributes: tuple[tuple[str, tuple[Scalar, ...] | Range], ...] = field(default_factory=tuple)

    @property
    def on_product_only(self) -> bool:
        """It names something besides the category (which the vector rows carry)."""
        return self.skus is not None or bool(self.attributes)

    @property
    def values(self) -> bool:
        """It names an attribute's value (or any of several): what a GIN index finds."""
        return any(not isinstance(value, Range) for _, value in self.attributes)

    @property
    def indexed(self) -> bool:
        """It names something an index finds (a sku; an attribute's value, on
        a large tenant's rows or the products): the rows it keeps are read
        from there when few. A range alone is not."""
        return self.skus is not None or self.values

    def __bool__(self) -> bool:
        return self.categories is not None or self.on_product_only

    def as_json(self) -> dict[str, Any]:
        """The filter in API.md's form, lists for any-of (the search log keeps it)."""
        data: dict[str, Any] = {}
        if self.categories is not None:
            data["category"] = list(self.categories)
        if self.skus is not None:
            data["sku"] = list(self.skus)
        if self.attributes:
            data["attributes"] = {
                name: {op: float(bound) for op, bound in value.bounds} if isinstance(value, Range) else list(value)
                for name, value in self.attributes
            }
        return data


def parse(data: Any) -> ProductFilter:
    """The client's filter object (or None: no filter)."""
    if data is None:
        return ProductFilter()
    if not isinstance(data, Mapping):
        raise FilterError("filter", "Must be a JSON object.")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise FilterError(unknown[0], f"Unknown filter; use {', '.join(FIELDS)}.")
    categories = _texts(data["category"], "category", max_length=100) if "category" in data else None
    skus = _texts(data["sku"], "sku", max_length=64) if "sku" in data else None
    attributes = _attributes(data["attributes"]) if "attributes" in data else ()
    return ProductFilter(categories, skus, attributes)


def _texts(value: Any, path: str, *, max_length: int) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > MAX_VALUES:
        raise FilterError(path, f"Give 1 to {MAX_VALUES} values.")
    for item in values:
        if not isinstance(item, str) or len(item) > max_length:
            raise FilterError(path, f"Each value must be a string of at most {max_length} characters.")
    return tuple(dict.fromkeys(values))


def _finite(value: Any) -> bool:
    return isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value))


def _scalar(value: Any, path: str) -> Scalar:
    if _finite(value) or (isinstance(value, str) and len(value) <= MAX_TEXT):
        return value
    raise FilterError(path, f"A value is a string (at most {MAX_TEXT} characters), a finite number or a boolean.")


def _number(value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise FilterError(path, "A range bound must be a finite number.")
    return Decimal(str(value))


def _attributes(data: Any) -> tuple[tuple[str, tuple[Scalar, ...] | Range], ...]:
    if not isinstance(data, Mapping) or not data:
        raise FilterError("attributes", "Must be a JSON object of at least one attribute name.")
    if len(data) > MAX_ATTRIBUTES:
        raise FilterError("attributes", f"At most {MAX_ATTRIBUTES} attributes.")
    result: list[tuple[str, tuple[Scalar, ...] | Range]] = []
    for name, condition in data.items():
        # Any name, as products' attributes may hold any (the body's size bounds it;
        # OpenAPI 3.0 cannot bound an object's keys).
        path = f"attributes.{name}"
        if isinstance(condition, Mapping):
            unknown = sorted(set(condition) - set(RANGE_OPERATORS))
            if unknown or not condition:
                raise FilterError(path, f"A range takes {', '.join(RANGE_OPERATORS)}.")
            bounds = tuple((op, _number(condition[op], f"{path}.{op}")) for op in RANGE_OPERATORS if op in condition)
            result.append((name, Range(bounds)))
        elif isinstance(condition, list):
            if not condition or len(condition) > MAX_VALUES:
                raise FilterError(path, f"Give 1 to {MAX_VALUES} values.")
            result.append((name, tuple(_scalar(value, path) for value in condition)))
        else:
            result.append((name, (_scalar(condition, path),)))
    return tuple(result)


def sql(product_filter: ProductFilter, *, on_rows: bool, index_values: bool = True) -> tuple[list[str], dict[str, Any]]:
    """Conditions on the vector rows `e` (search/query.py) of `%(tenant)s`,
    and their parameters.

    When `on_rows` (every row carries its product's category and attributes:
    catalog migrations 0010 and 0015), the category and attributes are
    checked on the row, a sku through the product; else everything through
    the product (its GIN index finds a value). An attribute value on the row:
    - `index_values`: as a containment test, which a large tenant's GIN index
      over its rows' attributes answers (search/indexes.py), for a plan that
      reads the rows the filter keeps;
    - else as a call of the function behind it, which no index answers,
      checked as an HNSW scan reads each row. The planner estimates that a
      third of the rows pass it (as it does a range), and keeps the HNSW
      index rather than sort every row the index finds (bench/README.md)."""
    if not on_rows:
        product, params = product_sql(product_filter)
        return [_of_products(product)] if product else [], params
    on_row = ProductFilter(categories=product_filter.categories, attributes=product_filter.attributes)
    conditions, params = product_sql(on_row, alias="e", indexable=index_values)
    if on_row:
        conditions.append("e.product_id IS NOT NULL")
    if product_filter.skus is not None:
        product, values = product_sql(ProductFilter(skus=product_filter.skus))
        conditions.append(_of_products(product))
        params.update(values)
    return conditions, params


def _of_products(conditions: list[str]) -> str:
    return (
        "e.product_id IN (SELECT p.id FROM catalog_product p WHERE p.tenant_id = %(tenant)s AND "  # noqa: S608 - constants; values are parameters
        + " AND ".join(conditions)
        + ")"
    )


def product_sql(
    product_filter: ProductFilter, alias: str = "p", *, indexable: bool = True
) -> tuple[list[str], dict[str, Any]]:
    """The filter's conditions on the rows `alias` (products, or vector rows,
    which carry their product's category and attributes), and their
    parameters. An attribute value is a containment test that a GIN index
    answers, or when not `indexable` the same test as a function call (sql())."""
    product: list[str] = []
    params: dict[str, Any] = {}
    if product_filter.categories is not None:
        params["f_categories"] = list(product_filter.categories)
        product.append(f"{alias}.category = ANY(%(f_categories)s)")
    if product_filter.skus is not None:
        params["f_skus"] = list(product_filter.skus)
        product.append(f"{alias}.sku = ANY(%(f_skus)s)")
    for number, (name, condition) in enumerate(product_filter.attributes):
        if isinstance(condition, Range):
            params[f"f_name{number}"] = name
            # CASE: the cast is evaluated only for a number (SQL does not
            # promise to check the type first in an AND).
            found = f"({alias}.attributes -> %(f_name{number})s)"
            number_value = f"(CASE WHEN jsonb_typeof({found}) = 'number' THEN {found}::numeric END)"
            checks = []
            for op, bound in condition.bounds:
                params[f"f_{op}{number}"] = bound
                checks.append(f"{number_value} {RANGE_OPERATORS[op]} %(f_{op}{number})s")
            product.append("(" + " AND ".join(checks) + ")")
        else:
            alternatives = []
            for index, wanted in enumerate(condition):
                key = f"f_attr{number}_{index}"
                params[key] = json.dumps({name: wanted})
                test = (
                    "{0}.attributes @> %({1})s::jsonb"
                    if indexable
                    else "jsonb_contains({0}.attributes, %({1})s::jsonb)"
                )
                alternatives.append(test.format(alias, key))
            product.append("(" + " OR ".join(alternatives) + ")")
    return product, params
