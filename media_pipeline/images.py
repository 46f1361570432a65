"""Loading images the way CLIP should see them: upright, RGB, not larger than needed."""

from __future__ import annotations

from typing import IO

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps

from media_pipeline.probe import pillow_rejections

BACKGROUND = (255, 255, 255)


def _draft(image: Image.Image, min_side: int) -> None:
    """Decode a JPEG at a reduced DCT scale (1/2, 1/4, 1/8) while its short side
    stays at least `min_side` (settings.IMAGE_DRAFT_MIN_SIDE; 0 decodes at full
    size): a fraction of the cost of decoding a 3000 px photo whole."""
    if min_side <= 0:
        return
    width, height = image.size
    scale = min_side / min(width, height)
    if scale < 0.5 and image.format == "JPEG":
        image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: transparency over white, 16-bit and float
    greyscale scaled to 8 bits, CMYK and palettes converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float32)
        if pixels.max(initial=0) > 255:
            pixels = pixels / 257.0  # 16-bit range onto 8 bits
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(file: IO[bytes], min_side: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """(RGB image ready for CLIP, (width, height) of the upright original).
    The first frame of an animated GIF or WebP. Raises FileRejected."""
    with pillow_rejections():
        image = Image.open(file)
        image.seek(0)
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):  # rotated a quarter turn: sides swap
            width, height = height, width
        _draft(image, settings.IMAGE_DRAFT_MIN_SIDE if min_side is None else min_side)
        image.load()
        upright: Image.Image = ImageOps.exif_transpose(image) or image
        return to_rgb(upright), (width, height)
