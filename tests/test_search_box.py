"""Image search's `box` (API.md, Search v2): only that region of the photo,
in fractions of its upright size (after EXIF orientation), is searched. A
catalog photo pasted into a larger picture is found first through a box
around it, scoring higher than the whole picture does; a box outside the
photo, of no area or malformed is a 400; one reaching past the photo's
edge is cut there."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from media_pipeline.images import load_image
from tests.catalogs import bulk_catalog
from tests.conftest import error_code

IMAGE_URL = "/api/v1/search/image"
SIDE = 160
CANVAS = (640, 480)
PASTED_AT = (400, 240)
BOX = f"{PASTED_AT[0] / CANVAS[0]},{PASTED_AT[1] / CANVAS[1]},{SIDE / CANVAS[0]},{SIDE / CANVAS[1]}"


def pattern(seed: int, size: tuple[int, int]) -> Image.Image:
    """Coloured stripes and blocks, different for each seed."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (6, 6, 3)).astype("uint8")
    return Image.fromarray(cells).resize(size, Image.Resampling.NEAREST)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def photos(tenant, clip):
    """Five catalog photos, each its product's one image, embedded as the pipeline would."""
    images = [pattern(seed, (SIDE, SIDE)) for seed in range(5)]
    vectors = clip.embed_images([load_image(io.BytesIO(png(image)))[0] for image in images])
    media = bulk_catalog(tenant, np.asarray(vectors))
    return images, media


def composite(photo: Image.Image) -> Image.Image:
    canvas = pattern(99, CANVAS)
    canvas.paste(photo, PASTED_AT)
    return canvas


def search(api, data: bytes, **fields):
    payload = {"file": SimpleUploadedFile("query.png", data), "min_score": 0, **fields}
    return api.post(IMAGE_URL, payload, format="multipart")


def score_of(body, media_id: int) -> float:
    return next(r["score"] for r in body["results"] if r["media_id"] == media_id)


@pytest.mark.django_db
def test_a_box_around_a_pasted_photo_finds_it_first(api, photos):
    images, media = photos
    picture = png(composite(images[2]))
    whole = search(api, picture).json()
    boxed = search(api, picture, box=BOX).json()
    assert boxed["results"][0]["media_id"] == media[2].pk
    assert score_of(boxed, media[2].pk) > score_of(whole, media[2].pk)
    assert score_of(boxed, media[2].pk) > 0.99


@pytest.mark.django_db
def test_the_box_is_in_the_upright_photos_coordinates(api, photos):
    images, media = photos
    upright = composite(images[3])
    # Stored turned a quarter, with EXIF orientation 6 saying how to turn it back.
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, format="JPEG", quality=97, exif=exif.tobytes())
    boxed = search(api, buffer.getvalue(), box=BOX).json()
    assert boxed["results"][0]["media_id"] == media[3].pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    "box",
    [
        "1,0,0.5,0.5",
        "0,0,0,0.5",
        "0,0,0.0,0.5",
        "-0.1,0,0.5,0.5",
        "0.1,0.1,0.5",
        "a,b,c,d",
        "0,0,nan,0.5",
        "0,0,1e-1,0.5",
    ],
)
def test_a_box_outside_the_photo_or_without_area_is_refused(api, photos, box):
    """Outside the photo (x or y of 1 or more, or below 0), without area (w or h of 0), or not four plain decimals."""
    response = search(api, png(composite(photos[0][0])), box=box)
    assert response.status_code == 400 and error_code(response) == "validation_error"
    assert "box" in response.json()["error"]["detail"]


@pytest.mark.django_db
def test_a_box_past_the_edge_is_cut_there(api, photos):
    images, media = photos
    picture = png(composite(images[1]))
    # From the pasted photo's corner to well past the picture's right and bottom edges.
    x, y = PASTED_AT[0] / CANVAS[0], PASTED_AT[1] / CANVAS[1]
    past = search(api, picture, box=f"{x},{y},0.9,0.9").json()
    exact = search(api, picture, box=f"{x},{y},{1 - x},{1 - y}").json()
    assert [r["media_id"] for r in past["results"]] == [r["media_id"] for r in exact["results"]]
    assert past["results"][0]["media_id"] == media[1].pk
