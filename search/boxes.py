"""A region of a query photo (API.md, Search v2: `box` on image search)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

# A region under this many pixels a side of the decoded photo is too small
# to say anything: refused rather than upscaled from nothing.
MIN_SIDE_PX = 8


@dataclass(frozen=True)
class Box:
    """x, y, width and height as fractions (0..1) of the upright photo's width and height."""

    x: float
    y: float
    width: float
    height: float

    @classmethod
    def parse(cls, text: str) -> Box:
        """From "x,y,w,h"; ValueError says what is wrong."""
        parts = text.split(",")
        if len(parts) != 4:
            raise ValueError('Give "x,y,w,h": four fractions of the photo\'s width and height.')
        try:
            x, y, width, height = (float(part) for part in parts)
        except ValueError:
            raise ValueError('Give "x,y,w,h" as numbers, e.g. "0.25,0.1,0.5,0.6".') from None
        if not all(math.isfinite(value) for value in (x, y, width, height)):
            raise ValueError("The box's numbers must be finite.")
        if width <= 0 or height <= 0:
            raise ValueError("The box has no area: its width and height must be above 0.")
        if x < 0 or y < 0 or x + width > 1 + 1e-9 or y + height > 1 + 1e-9:
            raise ValueError("The box must lie inside the photo: x, y >= 0, x + w <= 1 and y + h <= 1.")
        return cls(x, y, min(width, 1 - x), min(height, 1 - y))

    def crop(self, image: Image.Image) -> Image.Image:
        """This region of `image`; ValueError when it is too small to search."""
        left, top = round(self.x * image.width), round(self.y * image.height)
        right = max(left + 1, round((self.x + self.width) * image.width))
        bottom = max(top + 1, round((self.y + self.height) * image.height))
        if min(right - left, bottom - top) < MIN_SIDE_PX:
            raise ValueError(f"The box is under {MIN_SIDE_PX} pixels a side of this photo.")
        return image.crop((left, top, right, bottom))
