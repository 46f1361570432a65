"""`manage.py import_catalog FILE --tenant SLUG`: a catalog file's products
upserted by sku (catalog/bulk.py, as `POST /api/v1/products/bulk` does),
batch by batch, with a progress bar and a summary of the rows refused.

- `.jsonl` (or `.ndjson`): a product a line, as the API takes it.
- `.csv`: a header row; `sku`, `title` and `category` columns, an optional
  `attributes` column of JSON objects, and any other column an attribute of
  its name (its text as the value). An empty cell is a field left out: an
  existing product keeps its value.

With `--media-dir DIR`, a row's `media` (a list of file names; in a CSV,
names separated by `|`) are uploaded from DIR to its product through the
same ingest as `POST /api/v1/media/` (the same bytes again are the same
item: a rerun adds none); a file that is missing or refused is listed.

Every row is checked before anything is written. Each batch is its own
transaction, and a progress file beside FILE says how many batches went
in: a run that was interrupted carries on after them when run again with
the same file and tenant (and starts over when the file changed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from catalog.bulk import BulkResult, RowError, UnreadableRow, check_rows, read_lines, upsert_checked
from catalog.errors import FileRejected
from catalog.models import Product, Tenant
from media_pipeline.uploads import ingest_upload
from ops_console.maintenance import progress_bar, tenant_or_error

DEFAULT_BATCH_SIZE = 1000
PROGRESS_SUFFIX = ".import-progress"
SHOWN_ERRORS = 50  # the summary lists the first ones; the count says how many


def read_csv(path: Path) -> list[Any]:
    rows: list[Any] = []
    with path.open(newline="", encoding="utf-8-sig") as file:
        for number, record in enumerate(csv.DictReader(file), 2):  # line 1 is the header
            row: dict[str, Any] = {}
            attributes: dict[str, Any] = {}
            try:
                for name, value in record.items():
                    if name is None or value is None:
                        raise ValueError("it has more cells than the header has columns")
                    if value == "":
                        continue
                    if name in ("sku", "title", "category"):
                        row[name] = value
                    elif name == "media":
                        row[name] = [part.strip() for part in value.split("|") if part.strip()]
                    elif name == "attributes":
                        attributes = {**json.loads(value), **attributes}
                    else:
                        attributes[name] = value
            except (ValueError, TypeError) as exc:
                rows.append(UnreadableRow(f"Line {number}: {exc}"))
                continue
            if attributes:
                row["attributes"] = attributes
            rows.append(row)
    return rows


def read_rows(path: Path) -> list[Any]:
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return read_lines(path.read_text(encoding="utf-8"))
    raise CommandError(f"{path.name}: a catalog is a .csv or a .jsonl file.")


class Command(BaseCommand):
    help = (
        "Upsert a catalog file's products by sku into a tenant (.csv or .jsonl), batch by batch with a progress "
        "bar; bad rows are listed, never block the others; an interrupted run carries on when run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--dry-run", action="store_true", help="Check the rows and count; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
        parser.add_argument("--media-dir", type=Path, help="Where the files the rows' `media` name are.")

    def handle(self, *args, file: Path, tenant: str, dry_run: bool, batch_size: int, media_dir: Path | None, **options):
        if not file.is_file():
            raise CommandError(f"No file {file}.")
        if batch_size < 1:
            raise CommandError("--batch-size is at least 1.")
        owner = tenant_or_error(tenant)
        assert owner is not None  # --tenant is required
        try:
            rows = read_rows(file)
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file.name} is not UTF-8: {exc}") from None
        if media_dir is not None and not media_dir.is_dir():
            raise CommandError(f"No folder {media_dir}.")
        media = take_media(rows, media_dir)
        good, errors = check_rows(rows)
        refused = {error.index for error in errors}
        media_of = {}  # sku -> file names, of the row that is imported
        for index, names in media.items():
            if index not in refused and names:
                media_of[rows[index]["sku"].strip()] = names
        media_errors: list[str] = []
        if dry_run:
            existing = Product.objects.filter(tenant=owner, sku__in=list(good)).count()
            self.stdout.write(
                f"{len(rows)} rows: {len(good)} products ({len(good) - existing} new, {existing} already there),"
                f" {len(errors)} refused (dry run)."
            )
            self._errors(file, errors)
            return

        progress = Progress(file, owner.slug)
        skus = list(good)
        batches = [skus[start : start + batch_size] for start in range(0, len(skus), batch_size)]
        done = progress.batches_done(len(batches))
        if done:
            self.stdout.write(f"Carrying on after the {done} batches of the run that was interrupted.")
        result = BulkResult()
        with progress_bar(self.stdout, len(skus), f"Importing {file.name}", unit="products") as bar:
            bar.update(sum(len(batch) for batch in batches[:done]))
            for number, batch in enumerate(batches[done:], done + 1):
                result.add(upsert_checked(owner, {sku: good[sku] for sku in batch}))
                if media_dir is not None:
                    media_errors += upload_media(
                        owner, media_dir, {sku: media_of[sku] for sku in batch if sku in media_of}
                    )
                progress.save(number)
                bar.update(len(batch))
        progress.remove()
        carried = " (and the batches before this run)" if done else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged{carried};"
                f" {len(errors)} rows refused."
            )
        )
        self._errors(file, errors)
        if media_dir is not None:
            self.stdout.write(
                f"{sum(map(len, media_of.values())) - len(media_errors)} media files uploaded or there already;"
                f" {len(media_errors)} refused."
            )
            for message in media_errors[:SHOWN_ERRORS]:
                self.stdout.write(self.style.WARNING(f"  {message}"))

    def _errors(self, file: Path, errors: list[RowError]) -> None:
        for error in errors[:SHOWN_ERRORS]:
            where = f"line {error.index + 2}" if file.suffix.lower() == ".csv" else f"line {error.index + 1}"
            self.stdout.write(self.style.WARNING(f"  {where} (sku {error.sku or '?'}): {error.message}"))
        if len(errors) > SHOWN_ERRORS:
            self.stdout.write(self.style.WARNING(f"  ... and {len(errors) - SHOWN_ERRORS} more."))


def take_media(rows: list[Any], media_dir: Path | None) -> dict[int, list[str]]:
    """Each row's `media` file names, taken out of the row (they are no
    product field); a row naming media without `--media-dir`, or naming them
    other than as a list of names, becomes an error of its row."""
    media: dict[int, list[str]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or "media" not in row:
            continue
        names = row.pop("media")
        if media_dir is None:
            rows[index] = UnreadableRow("It names media files: give --media-dir, the folder they are in.")
        elif not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
            rows[index] = UnreadableRow("media: a list of file names.")
        else:
            media[index] = names
    return media


def upload_media(tenant: Tenant, media_dir: Path, media_of: dict[str, list[str]]) -> list[str]:
    """Upload each product's files from `media_dir`; what went wrong, a line each."""
    folder = media_dir.resolve()
    products = {product.sku: product for product in Product.objects.filter(tenant=tenant, sku__in=list(media_of))}
    problems = []
    for sku, names in media_of.items():
        for name in names:
            path = (folder / name).resolve()
            if not path.is_relative_to(folder) or not path.is_file():
                problems.append(f"{sku}: no file {name!r} in {media_dir}.")
                continue
            try:
                with path.open("rb") as opened:
                    ingest_upload(tenant, opened, path.stat().st_size, path.name, products[sku])
            except FileRejected as exc:
                problems.append(f"{sku}: {name}: {exc.message}")
    return problems


class Progress:
    """How many batches of a file went in, kept beside it until the import ends."""

    def __init__(self, file: Path, tenant: str):
        self.path = file.with_name(file.name + PROGRESS_SUFFIX)
        stat = file.stat()
        self.of = {"tenant": tenant, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def batches_done(self, batches: int) -> int:
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return 0
        if saved.get("of") != self.of:  # another file, or this one changed: from the start
            return 0
        return min(int(saved.get("batches", 0)), batches)

    def save(self, batches: int) -> None:
        self.path.write_text(json.dumps({"of": self.of, "batches": batches}))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
