"""Shared pieces of the maintenance commands: tenant scoping and id-ordered
batches, so that an interrupted run loses nothing and a rerun carries on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.core.management.base import CommandError
from django.db.models import QuerySet

from catalog.models import Media, Tenant

# Rows per batch: each batch is one short transaction holding row locks on
# this many media, and one progress line.
DEFAULT_BATCH_SIZE = 500


def tenant_or_error(slug: str | None) -> Tenant | None:
    if not slug:
        return None
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant '{slug}'.")
    return tenant


def scoped(queryset: QuerySet[Media], tenant: Tenant | None) -> QuerySet[Media]:
    return queryset if tenant is None else queryset.filter(tenant=tenant)


def id_batches(queryset: QuerySet[Media], batch_size: int) -> Iterator[list[int]]:
    """Ids of `queryset` in ascending batches, read afresh for each batch."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def run_in_batches(
    queryset: QuerySet[Media], batch_size: int, work: Callable[[list[int]], int], report: Callable[[str], None]
) -> int:
    total, done = queryset.count(), 0
    for ids in id_batches(queryset, batch_size):
        done += work(ids)
        report(f"  {done}/{total}")
    return done
