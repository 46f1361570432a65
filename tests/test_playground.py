"""The console's search playground (admin /admin/ops/playground/): a text or
a photo (or a region of it) searched in one tenant with a mode, filter and
cutoff; results down to score 0 with what the tenant's minimum score and
relative cutoff would drop, the plan used, and each result's picture served
to staff. Its searches are not logged."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Embedding, Media
from search.models import SearchLog
from tests.factories import MediaFactory, ProductFactory, TenantSettingsFactory, VideoFrameFactory, stored_media
from tests.media_files import jpeg_bytes

URL = "/admin/ops/playground/"


def photo_catalog(tenant, clip, count: int = 6) -> list[Media]:
    """Products with a real stored photo each, embedded by the suite's model."""
    from media_pipeline.images import load_image

    media = []
    for n in range(count):
        data = jpeg_bytes(96, 72, color=(40 * n, 200 - 30 * n, 90), seed=n)
        product = ProductFactory(tenant=tenant, title=f"Sample {['red', 'blue', 'green'][n % 3]} sneaker {n}")
        item = stored_media(f"clients/{tenant.slug}/p{n}.jpg", data, tenant=tenant, product=product)
        item.status = Media.Status.READY
        item.save(update_fields=["status"])
        vector = clip.embed_images([load_image(io.BytesIO(data))[0]])[0]
        Embedding.objects.create(tenant=tenant, media=item, product=product, model_name=clip.model_name, vector=vector)
        media.append(item)
    return media


@pytest.mark.django_db
def test_a_text_search_shows_results_the_plan_and_where_the_thresholds_fall(staff, tenant, clip):
    photo_catalog(tenant, clip)
    TenantSettingsFactory(tenant=tenant, min_similarity=0.2, search_cutoff="relative", relative_cutoff=0.0)
    response = staff.post(URL, {"tenant": tenant.slug, "query": "red sneaker", "mode": "vector", "k": 20})
    assert response.status_code == 200
    outcome = response.context["outcome"]
    assert outcome is not None and len(outcome.shown) >= 2
    assert outcome.response.strategy == "exact" and "plan <strong>exact</strong>" in response.content.decode()
    # Gap 0: the relative cutoff keeps the best only; the rest is shown, marked.
    assert [s.cut for s in outcome.shown] == [False] + [True] * (len(outcome.shown) - 1)
    assert all(s.below_min_score == (s.entry.score < 0.2) for s in outcome.shown)
    assert "drops what follows" in response.content.decode()
    assert not SearchLog.objects.exists()


@pytest.mark.django_db
def test_hybrid_mode_says_what_matched(staff, tenant, clip):
    photo_catalog(tenant, clip)
    outcome = staff.post(URL, {"tenant": tenant.slug, "query": "green sneaker", "mode": "hybrid", "k": 20}).context[
        "outcome"
    ]
    first = outcome.shown[0].entry
    assert "green" in first.product.title.lower() and "keyword" in first.matched


@pytest.mark.django_db
def test_a_photo_with_a_box_and_a_filter(staff, tenant, clip):
    media = photo_catalog(tenant, clip)
    wanted = media[4].product
    upload = SimpleUploadedFile("q.jpg", jpeg_bytes(200, 150, seed=4))
    response = staff.post(
        URL,
        {
            "tenant": tenant.slug,
            "photo": upload,
            "box": "0.1,0.1,0.5,0.5",
            "filter": f'{{"sku": ["{wanted.sku}"]}}',
            "k": 5,
        },
    )
    assert response.context["outcome"], response.context["form"].errors
    shown = response.context["outcome"].shown
    assert [s.entry.product.sku for s in shown] == [wanted.sku]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"query": ""}, "Give a text or a photo"),
        ({"query": "shoe", "filter": '{"colour": "red"}'}, "Unknown filter"),
        ({"query": "shoe", "filter": "{not json"}, "Expecting"),
        ({"query": "shoe", "box": "0,0,2,2"}, "fractions of the photo"),
    ],
)
def test_what_cannot_be_searched_is_said_on_the_form(staff, tenant, clip, fields, error):
    response = staff.post(URL, {"tenant": tenant.slug, "k": 10, **fields})
    assert response.status_code == 200 and response.context["outcome"] is None
    assert error in response.content.decode()


@pytest.mark.django_db
def test_a_photo_that_is_not_one_is_refused_on_the_form(staff, tenant, clip):
    upload = SimpleUploadedFile("q.jpg", b"not an image at all")
    response = staff.post(URL, {"tenant": tenant.slug, "photo": upload, "k": 10})
    assert response.context["outcome"] is None and response.context["form"].errors["photo"], response.context[
        "form"
    ].errors


@pytest.mark.django_db
def test_pictures_are_served_to_staff_only(staff, client, tenant, clip):
    item = photo_catalog(tenant, clip, count=1)[0]
    response = staff.get(f"/admin/ops/picture/{item.pk}/")
    assert response.status_code == 200 and b"".join(response.streaming_content)[:2] == b"\xff\xd8"
    video = MediaFactory(tenant=tenant, kind=Media.Kind.VIDEO)
    assert staff.get(f"/admin/ops/picture/{video.pk}/").status_code == 404  # a video has no picture of its own
    frame = VideoFrameFactory(media=video, thumbnail_key=item.storage_key)
    assert staff.get(f"/admin/ops/picture/{video.pk}/?frame={frame.pk}").status_code == 200
    assert staff.get(f"/admin/ops/picture/{video.pk}/?frame=x").status_code == 404
    staff.logout()
    assert client.get(f"/admin/ops/picture/{item.pk}/").status_code == 302  # to the login page


@pytest.mark.django_db
def test_staff_without_the_right_to_view_media_cannot_search_or_see_pictures(client, tenant, clip):
    from django.contrib.auth.models import Permission

    item = photo_catalog(tenant, clip, count=1)[0]
    user = get_user_model().objects.create_user("helpdesk", "h@example.com", "a-long-password-123", is_staff=True)
    client.force_login(user)
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"tenant": tenant.slug, "query": "a shoe", "k": 10}).status_code == 403
    assert client.get(f"/admin/ops/picture/{item.pk}/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_media", content_type__app_label="catalog"))
    user = get_user_model().objects.get(pk=user.pk)  # permissions are cached on the instance
    client.force_login(user)
    assert client.get(URL).status_code == 200
    assert client.get(f"/admin/ops/picture/{item.pk}/").status_code == 200


@pytest.mark.django_db
def test_the_console_links_the_playground(staff):
    assert "/admin/ops/playground/" in staff.get("/admin/").content.decode()
    assert staff.get(URL).status_code == 200
