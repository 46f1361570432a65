"""Shared pieces of the maintenance commands: the tenant option, work in
id-ordered batches (an interrupted run loses nothing and a rerun carries on),
and the progress bar of long work."""

from __future__ import annotations

from collections.abc import Callable

from django.core.management.base import CommandError, OutputWrapper
from django.db.models import QuerySet
from tqdm import tqdm

from catalog.batches import id_batches
from catalog.models import Tenant

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


class _Raw:
    """A command's stdout as a plain stream: tqdm redraws its line with \r,
    which OutputWrapper would end with a newline each time."""

    def __init__(self, stdout: OutputWrapper):
        self.stdout = stdout

    def write(self, text: str) -> None:
        self.stdout.write(text, ending="")

    def flush(self) -> None:
        self.stdout.flush()


def progress_bar(stdout: OutputWrapper, total: int | None, description: str, unit: str = "media") -> tqdm:
    return tqdm(total=total, desc=description, unit=f" {unit}", file=_Raw(stdout), mininterval=0, ncols=100)


def run_in_batches(
    queryset: QuerySet,
    batch_size: int,
    work: Callable[[list[int]], int],
    stdout: OutputWrapper,
    description: str,
    unit: str = "media",
) -> int:
    """`work(ids)` on each batch of `queryset`, with a progress bar; returns
    the sum of what `work` returned."""
    done = 0
    with progress_bar(stdout, queryset.count(), description, unit) as bar:
        for ids in id_batches(queryset, batch_size):
            done += work(ids)
            bar.update(len(ids))
    return done
