"""How fast the console's lists answer, pictures included, with a million media.

    .venv/bin/python bench/console_lists.py [--media 1000000] [--runs 5]

Loads `--media` rows over 50 tenants as bench/dashboard.py does (into a
throwaway database on the embedded PostgreSQL, `make services` first), each
with a thumbnail key, one in a hundred a duplicate of the one before; 40
products of the biggest tenant own 20,000 of its media, and 1,000 of its
unassigned media wait in the review list with three candidate products each.
Then times each list page and a product's page (through Django's test
client, as a logged-in operator), median of `--runs`, with the pictures and,
side by side in the same run, with the picture column taken out of the
lists: what drawing the pictures costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import drop_bench_database, operator_client, set_up_django, timed_ms, use_bench_database
from bench.dashboard import load as load_media
from bench.report import Table, emit, verdict

BENCH_DB = "stockmind_bench_console"
BIGGEST = "bench-1"
PRODUCTS = 40
OWNED = 20_000
SUGGESTIONS = 1_000
# Each list page, in ms.
TARGET_MS = 500.0


def load(media: int) -> None:
    from django.db import connection

    load_media(media)
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(
            """UPDATE catalog_media SET thumbnail_key = storage_key || '.thumbnail/320.jpg',
                   duplicate_of_id = CASE WHEN id % 100 = 0 THEN id - 1 END,
                   duplicate_kind = CASE WHEN id % 100 = 0 THEN 'near_identical' ELSE '' END,
                   duplicate_similarity = CASE WHEN id % 100 = 0 THEN 0.97 END
               WHERE status <> 'pending'"""
        )
        cursor.execute("SELECT id FROM catalog_tenant WHERE slug = %s", [BIGGEST])
        tenant_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO catalog_product (tenant_id, sku, title, category, attributes, created_at, updated_at)"
            " SELECT %s, 'SKU-' || n, 'Product ' || n, 'shoes', '{}', now(), now() FROM generate_series(1, %s) n",
            [tenant_id, PRODUCTS],
        )
        cursor.execute(
            """UPDATE catalog_media m SET product_id = p.id
               FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM catalog_media
                     WHERE tenant_id = %s AND status = 'ready' ORDER BY id LIMIT %s) AS owned
               JOIN catalog_product p ON p.tenant_id = %s AND p.sku = 'SKU-' || (1 + owned.n %% %s)
               WHERE m.id = owned.id""",
            [tenant_id, OWNED, tenant_id, PRODUCTS],
        )
        cursor.execute(
            "INSERT INTO search_recognizermodel (tenant_id, version, status, progress, progress_message, error,"
            " is_active, embedding_model, created_at) VALUES (%s, 1, 'ready', 100, '', '', true, 'bench', now())"
            " RETURNING id",
            [tenant_id],
        )
        recognizer_id = cursor.fetchone()[0]
        cursor.execute(
            """INSERT INTO search_recognizersuggestion (tenant_id, media_id, recognizer_id, candidates,
                   top_confidence, created_at)
               SELECT %s, m.id, %s, (SELECT jsonb_agg(jsonb_build_object('product', p.id, 'sku', p.sku,
                          'title', p.title, 'confidence', 0.5)) FROM (SELECT * FROM catalog_product
                          WHERE tenant_id = %s ORDER BY (id + m.id) %% %s LIMIT 3) p),
                      random(), now()
               FROM (SELECT id FROM catalog_media WHERE tenant_id = %s AND status = 'ready'
                     AND product_id IS NULL ORDER BY id LIMIT %s) m""",
            [tenant_id, recognizer_id, tenant_id, PRODUCTS, tenant_id, SUGGESTIONS],
        )
        cursor.execute("VACUUM ANALYZE catalog_media")
        print(f"Pictures, duplicates, products and suggestions set up in {time.perf_counter() - started:.1f} s")


def pages() -> dict[str, str]:
    from catalog.models import Product, Tenant

    tenant = Tenant.objects.get(slug=BIGGEST)
    product = Product.objects.filter(tenant=tenant).order_by("pk").first()
    return {
        "media list, all tenants": "/admin/catalog/media/",
        f"media list, {BIGGEST}": f"/admin/catalog/media/?tenant__id__exact={tenant.pk}",
        "failed list": "/admin/ops_console/failedmedia/",
        "stuck list": "/admin/ops_console/stuckmedia/",
        "duplicate pairs, all tenants": "/admin/ops_console/duplicatemedia/",
        "duplicate pairs, near-identical": "/admin/ops_console/duplicatemedia/?duplicate_kind__exact=near_identical",
        f"review list, {BIGGEST}": "/admin/search/recognizersuggestion/",
        "a product's page (its gallery)": f"/admin/catalog/product/{product.pk}/change/",
    }


def measure(runs: int) -> dict[str, float]:

    client = operator_client()

    def page(url: str) -> None:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)

    return {name: timed_ms(lambda url=url: page(url), runs) for name, url in pages().items()}


def measure_without_pictures(runs: int) -> dict[str, float]:
    """The same pages with the lists' picture columns and the product's gallery taken out."""
    from django.contrib import admin

    from catalog import pictures

    saved = {}
    for model_admin in admin.site._registry.values():
        if pictures.picture_column in model_admin.list_display:
            saved[model_admin] = model_admin.list_display
            model_admin.list_display = [c for c in model_admin.list_display if c is not pictures.picture_column]
    original_gallery = pictures.gallery
    pictures.gallery = lambda product: ""  # type: ignore[assignment]
    try:
        return measure(runs)
    finally:
        pictures.gallery = original_gallery
        for model_admin, list_display in saved.items():
            model_admin.list_display = list_display


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--media", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    use_bench_database(BENCH_DB)
    set_up_django()
    from django.db import connection

    load(args.media)
    with_pictures = measure(args.runs)
    without = measure_without_pictures(args.runs)
    emit(lists_table(args, with_pictures, without))
    connection.close()
    drop_bench_database(BENCH_DB)


def lists_table(args, with_pictures: dict[str, float], without: dict[str, float]) -> Table:
    table = Table(
        key="console",
        title=f"Console pages over {args.media:,} media in 50 tenants, 100 rows a page (ms, median of {args.runs})",
        columns=["page", "with pictures", "without", "target"],
    )
    for name, value in with_pictures.items():
        table.add(name, value, without[name], f"<= {TARGET_MS:.0f} ms: {verdict(value, TARGET_MS, at_least=False)}")
    table.notes.append(
        "Pictures are <img loading=lazy> tags of each item's thumbnail (catalog/pictures.py): the page pays for "
        "their URLs, the browser loads only those scrolled to. Without: the picture column and the gallery taken "
        "out, side by side in the same run."
    )
    return table


if __name__ == "__main__":
    main()
