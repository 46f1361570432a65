"""The demo's sample products and the photos and clip of them that the project
draws itself, so the demo needs no download. Same seed, same bytes: reloading
the demo finds its images already there instead of adding copies."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

IMAGES_PER_PRODUCT = 3
VIDEO_SECONDS = 6
VIDEO_FPS = 24
VIDEO_SIZE = (640, 360)


@dataclass(frozen=True)
class SampleProduct:
    sku: str
    title: str
    category: str
    color: tuple[int, int, int]
    shape: str


SAMPLE_PRODUCTS = [
    SampleProduct("SNK-RED-01", "Red suede sneaker", "shoes", (200, 30, 40), "sneaker"),
    SampleProduct("SNK-BLU-02", "Blue canvas sneaker", "shoes", (30, 70, 190), "sneaker"),
    SampleProduct("MUG-YEL-01", "Yellow ceramic mug", "kitchen", (235, 200, 40), "mug"),
    SampleProduct("MUG-GRN-02", "Green enamel mug", "kitchen", (40, 150, 80), "mug"),
    SampleProduct("LMP-BLK-01", "Black desk lamp", "lighting", (30, 30, 30), "lamp"),
    SampleProduct("LMP-WHT-02", "White floor lamp", "lighting", (235, 235, 230), "lamp"),
    SampleProduct("BAG-BRN-01", "Brown leather tote", "bags", (120, 70, 30), "bag"),
    SampleProduct("BAG-PNK-02", "Pink nylon backpack", "bags", (230, 120, 170), "bag"),
]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], color) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if shape == "sneaker":
        draw.rounded_rectangle((x0, y0 + h * 0.45, x1, y1), radius=int(h * 0.2), fill=color)
        draw.polygon([(x0, y0 + h * 0.5), (x0 + w * 0.45, y0), (x0 + w * 0.6, y0 + h * 0.5)], fill=color)
        draw.rectangle((x0, y1 - h * 0.12, x1, y1), fill=(245, 245, 245))
    elif shape == "mug":
        draw.rectangle((x0, y0, x0 + w * 0.75, y1), fill=color)
        draw.ellipse((x0 + w * 0.6, y0 + h * 0.25, x1, y0 + h * 0.75), outline=color, width=max(4, w // 12))
    elif shape == "lamp":
        draw.polygon(
            [(x0 + w * 0.2, y0 + h * 0.4), (x0 + w * 0.8, y0 + h * 0.4), (x0 + w * 0.6, y0), (x0 + w * 0.4, y0)],
            fill=color,
        )
        draw.rectangle((x0 + w * 0.47, y0 + h * 0.4, x0 + w * 0.53, y1 - h * 0.08), fill=(90, 90, 90))
        draw.ellipse((x0 + w * 0.25, y1 - h * 0.1, x0 + w * 0.75, y1), fill=(90, 90, 90))
    else:  # bag
        draw.rounded_rectangle((x0, y0 + h * 0.3, x1, y1), radius=int(w * 0.08), fill=color)
        draw.arc((x0 + w * 0.25, y0, x1 - w * 0.25, y0 + h * 0.6), 180, 360, fill=color, width=max(4, w // 15))


def product_image(product: SampleProduct, variant: int, size: tuple[int, int] = (800, 600)) -> bytes:
    """A JPEG 'photo' of the product: its shape and colour on a varied backdrop,
    seen from a slightly different framing in each variant."""
    rng = random.Random(f"{product.sku}-{variant}")
    background = tuple(rng.randint(180, 250) for _ in range(3))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    for _ in range(12):  # some clutter so that images are not flat
        x, y = rng.randint(0, size[0]), rng.randint(0, size[1])
        r = rng.randint(10, 60)
        tone = tuple(max(0, c - rng.randint(10, 40)) for c in background)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tone)
    scale = rng.uniform(0.55, 0.75)
    w, h = int(size[0] * scale), int(size[1] * scale)
    x0 = rng.randint(0, size[0] - w)
    y0 = rng.randint(0, size[1] - h)
    _draw_shape(draw, product.shape, (x0, y0, x0 + w, y0 + h), product.color)
    image = image.filter(ImageFilter.GaussianBlur(radius=0.6))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def product_video(product: SampleProduct) -> bytes:
    """An H.264 clip: the product sliding across the frame, then a cut to a
    closer shot halfway through (a scene change the sampler should catch)."""
    import av
    import numpy as np

    width, height = VIDEO_SIZE
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast"}
        total = VIDEO_SECONDS * VIDEO_FPS
        for index in range(total):
            progress = index / total
            close_up = progress >= 0.5
            image = Image.new("RGB", VIDEO_SIZE, (235, 230, 220) if not close_up else (60, 70, 90))
            scale = 0.8 if close_up else 0.5
            w, h = int(width * scale * 0.6), int(height * scale)
            x0 = int((width - w) * (progress * 2 % 1))
            y0 = (height - h) // 2
            _draw_shape(ImageDraw.Draw(image), product.shape, (x0, y0, x0 + w, y0 + h), product.color)
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
