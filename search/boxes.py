"""A region of a query photo (API.md, Search v2: `box` on image search)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image

# "x,y,w,h": x and y in [0, 1), w and h in (0, 1], as plain decimals. The API
# schema publishes this pattern and the server accepts exactly what it matches.
_START = r"(?:0(?:\.\d+)?|\.\d+)"
_SIZE = r"(?:0?\.\d*[1-9]\d*|1(?:\.0+)?)"
BOX_PATTERN = rf"^{_START},{_START},{_SIZE},{_SIZE}$"
_BOX = re.compile(BOX_PATTERN)
BOX_REFUSED = (
    'Give "x,y,w,h" as fractions of the photo\'s width and height, e.g. "0.25,0.1,0.5,0.6": x and y from 0 to '
    "below 1, w and h above 0 up to 1 (a box without area, or outside the photo, is refused)."
)


@dataclass(frozen=True)
class Box:
    """x, y, width and height as fractions (0..1) of the upright photo's width
    and height; a box reaching past the photo's right or bottom edge is cut there."""

    x: float
    y: float
    width: float
    height: float

    @classmethod
    def parse(cls, text: str) -> Box:
        """From "x,y,w,h"; ValueError says what is wrong."""
        if not _BOX.match(text):
            raise ValueError(BOX_REFUSED)
        x, y, width, height = (float(part) for part in text.split(","))
        if x >= 1 or y >= 1:  # "0.99999999999999999" reads as 1.0: at the edge, no area left
            raise ValueError(BOX_REFUSED)
        return cls(x, y, min(width, 1 - x), min(height, 1 - y))

    def crop(self, image: Image.Image) -> Image.Image:
        """This region of `image`, at least a pixel a side."""
        left = min(image.width - 1, int(self.x * image.width))
        top = min(image.height - 1, int(self.y * image.height))
        right = max(left + 1, round((self.x + self.width) * image.width))
        bottom = max(top + 1, round((self.y + self.height) * image.height))
        return image.crop((left, top, right, bottom))
