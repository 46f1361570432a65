"""The console's pictures: the thumbnails processing stored (an image's own,
a video's first kept frame's, each frame's), as <img> tags the admin pages
load lazily.

A picture is loaded from the storage's own URL where a browser can: S3's
(signed, S3_URL_EXPIRES_SECONDS), or MEDIA_URL when Django serves the media
(SERVE_MEDIA). Otherwise from the console's picture view, which streams it
to staff only (ops_console/sites.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.contrib import admin
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from catalog.models import Media, Product, VideoFrame

# How large a picture is drawn in a list, and on a product's page.
LIST_SIDE = 64
GALLERY_SIDE = 160
FRAME_SIDE = 96
# What a product's page shows at most: its first media, each video's first frames.
GALLERY_MEDIA = 60
STRIP_FRAMES = 40


def _storage_url(key: str) -> str | None:
    url = default_storage.url(key)
    if url.startswith(("http://", "https://")) or settings.SERVE_MEDIA:
        return url
    return None


def media_picture_url(media: Media) -> str | None:
    """Where the browser loads `media`'s thumbnail; None when it has none."""
    if not media.thumbnail_key:
        return None
    return _storage_url(media.thumbnail_key) or reverse("admin:ops-picture", args=[media.pk])


def frame_picture_url(frame: VideoFrame) -> str | None:
    if not frame.thumbnail_key:
        return None
    url = _storage_url(frame.thumbnail_key)
    return url or f"{reverse('admin:ops-picture', args=[frame.media_id])}?frame={frame.pk}"


def picture_tag(url: str | None, alt: str, side: int = LIST_SIDE) -> SafeString:
    """A lazily loaded picture at most `side` pixels a side, or a grey "no
    picture" box of that size (not processed yet, failed, or gone)."""
    if url is None:
        return format_html(
            '<span class="sm-no-picture" style="display:inline-block;width:{}px;height:{}px;background:#eee;'
            'color:#888;font-size:10px;text-align:center;line-height:{}px">no picture</span>',
            side,
            side,
            side,
        )
    return format_html(
        '<img class="sm-picture" src="{}" alt="{}" loading="lazy" decoding="async" '
        'style="max-width:{}px;max-height:{}px;vertical-align:middle">',
        url,
        alt,
        side,
        side,
    )


def media_picture(media: Media, side: int = LIST_SIDE) -> SafeString:
    return picture_tag(media_picture_url(media), f"{media.kind} #{media.pk}", side)


@admin.display(description="picture")
def picture_column(media: Media) -> SafeString:
    """A list's picture column."""
    return media_picture(media)


def product_pictures(product_ids: Iterable[int]) -> dict[int, str | None]:
    """Each product's picture: its first ready item's thumbnail."""
    first = (
        Media.objects.filter(product_id__in=list(product_ids), status=Media.Status.READY)
        .exclude(thumbnail_key="")
        .order_by("product_id", "pk")
        .distinct("product_id")
    )
    return {media.product_id: media_picture_url(media) for media in first if media.product_id is not None}


def gallery(product: Product) -> SafeString:
    """A product's page: the pictures of its media (the first GALLERY_MEDIA),
    each linking to the item, and under each video a strip of its kept
    frames (the first STRIP_FRAMES)."""
    media = list(product.media.order_by("pk")[:GALLERY_MEDIA])
    if not media:
        return format_html("<p>{}</p>", "No media yet.")
    frames: dict[int, list[VideoFrame]] = defaultdict(list)
    videos = [item.pk for item in media if item.kind == Media.Kind.VIDEO]
    for frame in VideoFrame.objects.filter(media_id__in=videos).exclude(thumbnail_key="").order_by("media_id", "index"):
        if len(frames[frame.media_id]) < STRIP_FRAMES:
            frames[frame.media_id].append(frame)
    figures = []
    for item in media:
        strip = format_html_join(
            "",
            '<span title="{} ms" style="margin-right:2px">{}</span>',
            (
                (frame.timestamp_ms, picture_tag(frame_picture_url(frame), f"frame {frame.index}", FRAME_SIDE))
                for frame in frames.get(item.pk, [])
            ),
        )
        link = reverse("admin:catalog_media_change", args=[item.pk])
        duplicate = (
            f", {item.get_duplicate_kind_display().lower()} copy of #{item.duplicate_of_id}"
            if item.duplicate_kind
            else ""
        )
        figures.append(
            format_html(
                '<figure class="sm-gallery-item" style="display:inline-block;margin:0 12px 12px 0;vertical-align:top">'
                '<a href="{}">{}</a><figcaption>{} #{}: {}{}</figcaption>{}</figure>',
                link,
                media_picture(item, GALLERY_SIDE),
                item.kind,
                item.pk,
                item.status,
                duplicate,
                format_html('<div class="sm-frames">{}</div>', strip) if strip else "",
            )
        )
    return format_html('<div class="sm-gallery">{}</div>', format_html_join("", "{}", ((f,) for f in figures)))
