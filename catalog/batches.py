"""Walking a large queryset in id order, a batch at a time: each batch is
read afresh, so rows changed by the previous batch or by others are seen as
they are now, and an interrupted walk can simply start again."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet


def id_batches(queryset: QuerySet, batch_size: int) -> Iterator[list[int]]:
    """Ids of `queryset` in ascending batches of at most `batch_size`."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def scoped(queryset: QuerySet, tenant) -> QuerySet:
    """`queryset` limited to `tenant`'s rows, or all of them for None."""
    return queryset if tenant is None else queryset.filter(tenant=tenant)
