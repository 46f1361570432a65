"""`manage.py import_catalog FILE --tenant SLUG` (issue 17): a .csv or .jsonl
catalog upserted by sku, bad rows listed by their line, a dry run, and an
interrupted import that carries on when run again."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Product
from ops_console.management.commands import import_catalog
from tests.factories import ProductFactory


def run(*args) -> str:
    out = StringIO()
    call_command("import_catalog", *map(str, args), stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_a_csv_is_upserted_and_its_bad_rows_listed_by_line(tmp_path, tenant, other_tenant):
    ProductFactory(tenant=tenant, sku="C-1", title="old", attributes={"color": "red", "size": 40})
    ProductFactory(tenant=other_tenant, sku="C-2", title="theirs")
    path = tmp_path / "catalog.csv"
    path.write_text(
        "sku,title,category,color,attributes\n"
        'C-1,new title,,blue,"{""size"": 41}"\n'  # empty category: kept
        "C-2,second,shoes,,\n"
        "bad sku!,third,,,\n"
        "C-2,again,,,\n"
        'C-4,fourth,,,"{not json"\n'
    )
    out = run(path, "--tenant", tenant.slug)
    assert "1 created, 1 updated, 0 unchanged; 3 rows refused." in out
    assert "line 4 (sku bad sku!)" in out and "line 5 (sku C-2)" in out and "Line 6" in out
    updated = Product.objects.get(tenant=tenant, sku="C-1")
    assert (updated.title, updated.attributes) == ("new title", {"color": "blue", "size": 41})
    assert Product.objects.get(tenant=tenant, sku="C-2").category == "shoes"
    assert Product.objects.get(tenant=other_tenant, sku="C-2").title == "theirs"
    assert not (tmp_path / "catalog.csv.import-progress").exists()

    assert "0 created, 0 updated, 2 unchanged" in run(path, "--tenant", tenant.slug)  # again: nothing changes


@pytest.mark.django_db
def test_a_dry_run_counts_and_changes_nothing(tmp_path, tenant):
    ProductFactory(tenant=tenant, sku="J-1")
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(json.dumps({"sku": f"J-{n}", "title": f"t {n}"}) for n in range(1, 4)) + "\n{oops\n")
    out = run(path, "--tenant", tenant.slug, "--dry-run")
    assert "4 rows: 3 products (2 new, 1 already there), 1 refused (dry run)." in out and "line 4" in out
    assert Product.objects.count() == 1


@pytest.mark.django_db
def test_an_interrupted_import_carries_on_after_the_batches_that_went_in(tmp_path, tenant, monkeypatch):
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(json.dumps({"sku": f"R-{n}", "title": f"t {n}"}) for n in range(5)))
    real = import_catalog.upsert_checked
    calls = []

    def interrupted(owner, rows):
        calls.append(sorted(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or the machine going down
        return real(owner, rows)

    monkeypatch.setattr(import_catalog, "upsert_checked", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(path, "--tenant", tenant.slug, "--batch-size", "2")
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["R-0", "R-1"]
    assert (tmp_path / "catalog.jsonl.import-progress").exists()

    monkeypatch.setattr(import_catalog, "upsert_checked", real)
    out = run(path, "--tenant", tenant.slug, "--batch-size", "2")
    assert "Carrying on after the 1 batches" in out and "3 created" in out
    assert Product.objects.filter(tenant=tenant).count() == 5
    assert not (tmp_path / "catalog.jsonl.import-progress").exists()


@pytest.mark.django_db
def test_what_cannot_be_imported_is_said(tmp_path, tenant):
    (tmp_path / "catalog.csv").write_text("sku,title\nA-1,a\n")
    with pytest.raises(CommandError, match="No tenant"):
        run(tmp_path / "catalog.csv", "--tenant", "nobody")
    (tmp_path / "catalog.xml").write_text("<products/>")
    with pytest.raises(CommandError, match=r"\.csv or a \.jsonl"):
        run(tmp_path / "catalog.xml", "--tenant", tenant.slug)
    with pytest.raises(CommandError, match="No file"):
        run(tmp_path / "missing.csv", "--tenant", tenant.slug)
    with pytest.raises(CommandError, match="at least 1"):
        run(tmp_path / "catalog.csv", "--tenant", tenant.slug, "--batch-size", "0")
    with pytest.raises(CommandError, match="No folder"):
        run(tmp_path / "catalog.csv", "--tenant", tenant.slug, "--media-dir", tmp_path / "nowhere")


@pytest.mark.django_db
def test_media_dir_uploads_each_rows_files_to_its_product_once(tmp_path, tenant):
    from catalog.models import Media
    from tests.media_files import jpeg_bytes

    media_dir = tmp_path / "photos"
    media_dir.mkdir()
    (media_dir / "a.jpg").write_bytes(jpeg_bytes(64, 48, seed=1))
    (media_dir / "b.jpg").write_bytes(jpeg_bytes(64, 48, seed=2))
    (media_dir / "not-a-photo.jpg").write_bytes(b"hello")
    (tmp_path / "secret.jpg").write_bytes(jpeg_bytes(64, 48, seed=3))
    path = tmp_path / "catalog.csv"
    path.write_text(
        "sku,title,media\n M-1 ,first,a.jpg|b.jpg\nM-2,second,not-a-photo.jpg|missing.jpg|../secret.jpg\nM-3,third,\n"
    )
    out = run(path, "--tenant", tenant.slug, "--media-dir", media_dir)
    assert "3 created" in out and "2 media files uploaded or there already; 3 refused." in out
    assert "M-2: no file 'missing.jpg'" in out and "M-2: no file '../secret.jpg'" in out
    assert sorted(Media.objects.filter(product__sku="M-1").values_list("original_filename", flat=True)) == [
        "a.jpg",
        "b.jpg",
    ]
    assert not Media.objects.filter(product__sku="M-2").exists()

    run(path, "--tenant", tenant.slug, "--media-dir", media_dir)  # again: the same files are the same items
    assert Media.objects.filter(tenant=tenant).count() == 2

    out = run(path, "--tenant", tenant.slug)  # naming media without --media-dir: those rows are refused
    assert "give --media-dir" in out and "2 rows refused" in out
