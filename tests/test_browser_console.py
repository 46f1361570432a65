"""The operators' console in a real browser: headless Chromium (Debian's
package, installed by `make test`) driven by Playwright against the live
server, with a real Celery worker behind it."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from catalog.models import Media, TenantSettingsChange, VideoFrame
from search.models import RecognizerModel
from tests.catalogs import generated_catalog, unassigned, unit
from tests.conftest import wait_for
from tests.factories import MediaFactory, TenantSettingsFactory
from tests.media_files import jpeg_bytes

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# What the machine's closed network needs: no background connections, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a-long-password-123"


@pytest.fixture(scope="module")
def browser(django_db_setup, live_server):
    """Chromium for this module. The test database and the live server start
    first: Playwright's sync API keeps an event loop running in this thread,
    beside which the tests' ORM calls are still plain synchronous code."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"No Chromium at {CHROMIUM}: `make test` installs Debian's chromium package (or set CHROMIUM_PATH)."
        )
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def page(browser, live_server, transactional_db):
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    yield page
    context.close()


def stored_failed(tenant, reason: str) -> Media:
    """A failed item whose stored file is a good photo: reprocessing succeeds."""
    key = default_storage.save(f"clients/{tenant.slug}/_unassigned/media/image/photo.jpg", ContentFile(jpeg_bytes()))
    return MediaFactory(
        tenant=tenant,
        product=None,
        storage_key=key,
        status=Media.Status.FAILED,
        error=reason,
        processed_at=timezone.now(),
    )


def test_dashboard_stuck_and_failed_lists(page, tenant):
    from playwright.sync_api import expect

    stuck = MediaFactory(
        tenant=tenant,
        status=Media.Status.PROCESSING,
        attempts=2,
        processing_started_at=timezone.now() - timedelta(hours=3),
    )
    for _ in range(2):
        MediaFactory(
            tenant=tenant,
            status=Media.Status.FAILED,
            error="The image is truncated or corrupt.",
            processed_at=timezone.now(),
        )
    MediaFactory(
        tenant=tenant,
        status=Media.Status.READY,
        processing_started_at=timezone.now() - timedelta(minutes=5, seconds=2),
        processed_at=timezone.now() - timedelta(minutes=5),
    )

    page.get_by_role("link", name="Pipeline dashboard").click()
    expect(page.locator("h1")).to_have_text("Pipeline dashboard")
    expect(page.locator("#verdict")).to_contain_text("1 media stuck")
    expect(page.locator("[data-status=failed] .n")).to_have_text("2")
    expect(page.locator("[data-status=ready] .n")).to_have_text("1")
    expect(page.locator("svg.ops-chart")).to_be_visible()
    expect(page.locator("#error-rate")).to_have_text("66.7%")
    expect(page.locator("tr[data-tenant=acme]")).to_be_visible()

    page.locator("[data-status=stuck] a").click()
    expect(page.locator("#result_list")).to_contain_text("3 h 0 min")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text(str(stuck.pk))

    page.go_back()
    page.locator("[data-status=failed] a").click()
    expect(page.locator("#changelist-filter")).to_contain_text("The image is truncated or corrupt. (2)")


def test_reprocess_every_failed_item_of_a_reason(page, tenant, worker):
    from playwright.sync_api import expect

    items = [stored_failed(tenant, "Processing error: the GPU caught fire") for _ in range(2)]
    other = MediaFactory(tenant=tenant, status=Media.Status.FAILED, error="The stored file is missing.")

    page.goto("/admin/ops_console/failedmedia/")
    page.get_by_role("link", name=re.compile(r"GPU caught fire \(2\)")).click()
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    page.check("#action-toggle")
    page.select_option("select[name=action]", "reprocess")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text("Queued 2 failed media for processing again.")

    wait_for(
        lambda: all(Media.objects.get(pk=m.pk).status == Media.Status.READY for m in items),
        what="the worker to process them",
    )
    page.goto("/admin/ops_console/failedmedia/")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    other.refresh_from_db()
    assert other.status == Media.Status.FAILED


def test_thresholds_preview_then_save(page, tenant):
    from playwright.sync_api import expect

    thresholds = TenantSettingsFactory(tenant=tenant)
    MediaFactory(
        tenant=tenant, status=Media.Status.PROCESSING, processing_started_at=timezone.now() - timedelta(minutes=20)
    )
    page.goto(f"/admin/catalog/tenantsettings/{thresholds.pk}/change/")
    page.fill("#id_stuck_after_minutes", "15")
    page.get_by_role("button", name="Preview the effect of these values").click()
    row = page.locator("tr[data-field=stuck_after_minutes]")
    expect(row.locator("td").nth(2)).to_have_text("0 media count as stuck")
    expect(row.locator(".at-proposed")).to_have_text("1 media count as stuck")
    page.get_by_role("button", name="Save these values").click()
    expect(page.locator(".messagelist")).to_contain_text("Saved the settings of acme.")
    expect(page.locator("#id_stuck_after_minutes")).to_have_value("15")
    expect(page.get_by_text("change history", exact=False)).to_be_visible()
    assert TenantSettingsChange.objects.get().new_value == "15"

    page.fill("#id_min_similarity", "1.5")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errornote")).to_be_visible()  # refused: similarities lie in 0..1


def test_retrain_activate_and_accept_a_suggestion(page, tenant, worker, settings, tiny_model):
    from playwright.sync_api import expect

    settings.CLIP_MODEL = str(tiny_model)
    catalog = generated_catalog(tenant, products=6)
    TenantSettingsFactory(tenant=tenant, auto_assign_confidence=1.0)
    item = unassigned(tenant, unit(catalog.centres[0] + catalog.centres[1]))

    page.goto("/admin/search/recognizermodel/")
    page.get_by_role("link", name="Train a new version").click()
    page.select_option("#id_tenant", "acme")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator(".messagelist")).to_contain_text("Training version 1 of acme's recognizer")
    # The list refreshes itself while the worker trains.
    expect(page.locator("#result_list tbody tr").first).to_contain_text("ready", timeout=60_000)
    version = RecognizerModel.objects.get(tenant=tenant)
    expect(page.locator("#result_list")).to_contain_text(f"{version.top1_accuracy * 100:.1f}%")

    page.check("input[name=_selected_action]")
    page.select_option("select[name=action]", "activate")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text("Version 1 is now acme's recognizer")

    wait_for(
        lambda: item.__class__.objects.filter(pk=item.pk, recognizer_suggestion__isnull=False).exists(),
        what="the worker's predictions",
    )
    page.goto("/admin/search/recognizersuggestion/")
    button = page.get_by_role("button", name=re.compile(r"Accept GEN-00[01]")).first
    sku = button.inner_text().split()[1]
    button.click()
    expect(page.locator(".messagelist")).to_contain_text(f"is now {sku}")
    item.refresh_from_db()
    assert item.product.sku == sku


def test_search_playground_shows_pictures_and_searches_a_region(page, tenant, clip, tmp_path):
    from playwright.sync_api import expect

    from tests.test_playground import photo_catalog

    photo_catalog(tenant, clip)
    page.goto("/admin/")
    page.get_by_role("link", name="Search playground").click()
    page.select_option("#id_tenant", tenant.slug)
    page.fill("#id_query", "red sneaker")
    page.click("#pg-search")
    pictures = page.locator("#pg-results img")
    expect(pictures.first).to_be_visible()
    assert pictures.count() == 6
    wait_for(
        lambda: page.evaluate(
            "[...document.querySelectorAll('#pg-results img')].every(i => i.complete && i.naturalWidth > 0)"
        ),
        timeout=15,
        what="the results' pictures to load",
    )
    expect(page.locator("#pg-plan")).to_contain_text("plan")

    # A photo, and a region of it dragged on its preview.
    query = tmp_path / "query.jpg"
    query.write_bytes(jpeg_bytes(200, 150, seed=3))
    page.fill("#id_query", "")
    page.set_input_files("#id_photo", str(query))
    image = page.locator("#pg-image")
    expect(image).to_be_visible()
    box = image.bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    assert page.input_value("#id_box").count(",") == 3
    page.click("#pg-search")
    expect(page.locator("#pg-results img").first).to_be_visible()
    assert page.locator("#pg-results .pg-result").count() == 6


def pictures_load(page, url: str, at_least: int) -> None:
    """Open `url` and wait for every console picture on it to load: each one
    lazily loaded, scrolled to, then decoded with a width."""
    page.goto(url)
    pictures = page.locator("img.sm-picture")
    assert pictures.count() >= at_least, f"{pictures.count()} pictures on {url}"
    assert {pictures.nth(n).get_attribute("loading") for n in range(pictures.count())} == {"lazy"}
    for n in range(pictures.count()):
        pictures.nth(n).scroll_into_view_if_needed()
    wait_for(
        lambda: page.evaluate(
            "[...document.querySelectorAll('img.sm-picture')].every(i => i.complete && i.naturalWidth > 0)"
        ),
        timeout=15,
        what=f"the pictures of {url} to load",
    )


def test_the_console_shows_pictures(page, tenant, clip):
    from catalog import transitions
    from media_pipeline.processing import process_batch
    from ops_console.demo_media import SAMPLE_PRODUCTS, product_image, product_video
    from tests.factories import ProductFactory, RecognizerSuggestionFactory, stored_media
    from tests.test_duplicates import COPIES, picture

    product = ProductFactory(tenant=tenant, sku="MUG-1")
    photo = product_image(SAMPLE_PRODUCTS[2], 0)

    def item(name: str, data: bytes, kind: str = "image", **fields) -> Media:
        content_type = "image/jpeg" if kind == "image" else "video/mp4"
        media = stored_media(
            f"clients/acme/console/{name}", data, tenant=tenant, kind=kind, content_type=content_type, **fields
        )
        process_batch([media.pk], f"task-{media.pk}")
        return Media.objects.get(pk=media.pk)

    original = item("mug.jpg", photo, product=product)
    copy = item("mug-copy.jpg", COPIES["re-encoded at quality 40"](picture(photo)), product=product)
    assert (copy.duplicate_of_id, copy.duplicate_kind) == (original.pk, "near_identical")
    video = item("mug.mp4", product_video(SAMPLE_PRODUCTS[2]), kind="video", product=product)
    assert video.status == "ready" and video.thumbnail_key
    failed = item("failed.jpg", product_image(SAMPLE_PRODUCTS[3], 1), product=product)
    transitions.fail(Media.objects.filter(pk=failed.pk), "Marked failed by ops.")
    stuck = item("stuck.jpg", product_image(SAMPLE_PRODUCTS[4], 1), product=product)
    Media.objects.filter(pk=stuck.pk).update(
        status=Media.Status.PROCESSING, processing_started_at=timezone.now() - timedelta(hours=3)
    )
    waiting = item("unassigned.jpg", product_image(SAMPLE_PRODUCTS[2], 2), product=None)
    RecognizerSuggestionFactory(
        media=waiting,
        candidates=[{"product": product.pk, "sku": product.sku, "title": product.title, "confidence": 0.6}],
    )

    pictures_load(page, "/admin/catalog/media/", at_least=6)
    pictures_load(page, "/admin/ops_console/failedmedia/", at_least=1)
    pictures_load(page, "/admin/ops_console/stuckmedia/", at_least=1)
    # The item beside its candidate product's picture.
    pictures_load(page, "/admin/search/recognizersuggestion/", at_least=2)
    pictures_load(page, "/admin/ops_console/duplicatemedia/", at_least=2)
    # The product's gallery, with the video's strip of frames under it.
    frames = VideoFrame.objects.filter(media=video).count()
    pictures_load(page, f"/admin/catalog/product/{product.pk}/change/", at_least=5 + frames)
