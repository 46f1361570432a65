"""What processing keeps of a picture besides its vector: a small JPEG
thumbnail for the console, and a perceptual hash (pHash, 64 bits) by which
another copy of the same picture is found; and the check that two pictures
are the same one, re-encoded, resized or lightly cropped.

A perceptual hash survives re-encoding and resizing (a few bits change) but
not a crop: 3% off each side moves a pHash by up to 14 bits, as far as two
different photos of one product can be. So the hash only proposes
candidates, and `same_picture` decides by aligning the two: the smaller is
slid over the larger at the scales a crop of up to CROP_MAX could leave, the
best place found by normalised cross-correlation on greyscale at
ALIGN_WIDTH pixels, and the pictures compared there in colour at
COMPARE_WIDTH pixels. Copies differ there by a few levels of 255 (JPEG
noise, resampling); two photos of one product on different backdrops by
tens (tests/test_duplicates.py sorts a corpus of both).
"""

from __future__ import annotations

import io

import imagehash
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

THUMBNAIL_SIDE = 320
THUMBNAIL_QUALITY = 85
# The perceptual hash's bits, and how far apart two hashes may be for their
# pictures to be compared at all.
HASH_BITS = 64
CANDIDATE_BITS = 24
# The smaller picture may be this much narrower than the larger (a crop of
# up to a tenth off each side).
CROP_MAX = 0.2
ALIGN_WIDTH = 64
COARSE_SCALES = 9
# The coarse scales tried first (1.0, 0.9 and 0.8): a copy correlates above
# 0.94 at one of them, and most candidates that are not copies stop there,
# at a third of the cost of every coarse scale (bench/ingest.py's profile).
SCREEN_SCALES = (0, COARSE_SCALES // 2, COARSE_SCALES - 1)
# Those scales are tried at this width first: copies still correlate above
# 0.86 there, and most pictures that are not copies stop there, at a quarter
# of the pixels.
SCREEN_WIDTH = ALIGN_WIDTH // 2
COMPARE_WIDTH = 128
# Below this correlation at the coarse scales' best place, not the same
# picture (copies, crops included, correlate above 0.93).
MIN_CORRELATION = 0.8
# At the best alignment, 90% of the pixels must be within this many levels
# (of 255, the largest difference of the three channels).
SAME_PICTURE_MAX_DIFF = 16.0
DIFF_PERCENTILE = 90


def thumbnail_jpeg(image: Image.Image) -> bytes:
    """The console's picture of an image or a frame: at most THUMBNAIL_SIDE a side."""
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def perceptual_hash(image: Image.Image) -> int:
    """The picture's pHash as a signed 64-bit integer (a bigint column)."""
    bits = imagehash.phash(image).hash.flatten()
    unsigned = int("".join("1" if bit else "0" for bit in bits), 2)
    return unsigned - (1 << HASH_BITS) if unsigned >= 1 << (HASH_BITS - 1) else unsigned


def hash_distance(a: int, b: int) -> int:
    """How many bits two perceptual hashes differ in."""
    return ((a ^ b) & ((1 << HASH_BITS) - 1)).bit_count()


def _grey(image: Image.Image, width: int) -> np.ndarray:
    height = max(1, round(width * image.height / image.width))
    return np.asarray(image.convert("L").resize((width, height), Image.Resampling.BOX), dtype=np.float32)


def _windows(table: np.ndarray, height: int, width: int) -> np.ndarray:
    """The sum of every height x width window, from an integral image."""
    return table[height:, width:] - table[:-height, width:] - table[height:, :-width] + table[:-height, :-width]


class Picture:
    """A thumbnail made ready for comparisons: its greyscale at each width
    (centred and scaled to unit variance as a template), and at each
    alignment width its integral images, from which every window's standard
    deviation takes four lookups. Each is made once however many pictures
    it is compared with: a duplicate check compares one with several, both
    ways, and each comparison tries several scales."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self._greyscale: Image.Image | None = None
        self._greys: dict[int, np.ndarray] = {}
        self._templates: dict[int, np.ndarray] = {}
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._stds: dict[tuple[int, int, int], np.ndarray] = {}

    def grey(self, width: int) -> np.ndarray:
        if width not in self._greys:
            if self._greyscale is None:
                self._greyscale = self.image.convert("L")
            self._greys[width] = _grey(self._greyscale, width)
        return self._greys[width]

    def template(self, width: int) -> np.ndarray:
        if width not in self._templates:
            grey = self.grey(width)
            self._templates[width] = (grey - grey.mean()) / (grey.std() + 1e-6)
        return self._templates[width]

    def _window_std(self, align_width: int, height: int, width: int) -> np.ndarray:
        key = (align_width, height, width)
        if key not in self._stds:
            if align_width not in self._tables:
                wide = self.grey(align_width).astype(np.float64)
                self._tables[align_width] = (
                    np.pad(wide.cumsum(0).cumsum(1), ((1, 0), (1, 0))),
                    np.pad((wide * wide).cumsum(0).cumsum(1), ((1, 0), (1, 0))),
                )
            sums, squares = self._tables[align_width]
            n = height * width
            mean = _windows(sums, height, width) / n
            self._stds[key] = np.sqrt(np.maximum(_windows(squares, height, width) / n - mean * mean, 0.0)) + 1e-6
        return self._stds[key]

    def best_place(
        self, small: Picture, scale: float, align_width: int = ALIGN_WIDTH
    ) -> tuple[float, int, int, tuple[int, int]]:
        """(correlation, row, column, shape) of `small` at `scale` of this
        picture's width, at its best place in it, both at `align_width`."""
        grey = self.grey(align_width)
        template = small.template(max(8, round(align_width * scale)))
        height, width = template.shape
        if height > grey.shape[0] or width > grey.shape[1]:
            return -1.0, 0, 0, template.shape
        # The template is centred, so the windows' means drop out of the numerator.
        dot = np.einsum("ijkl,kl->ij", sliding_window_view(grey, template.shape), template) / template.size
        correlation = dot / self._window_std(align_width, height, width)
        row, column = np.unravel_index(int(correlation.argmax()), correlation.shape)
        return float(correlation[row, column]), int(row), int(column), template.shape


def _difference_inside(large: Picture, small: Picture) -> float:
    """The DIFF_PERCENTILE-th difference of `small` at its best place inside
    `large`; inf when no place correlates at least MIN_CORRELATION (most
    candidates that are not copies end there, before the finer search)."""
    coarse = np.linspace(1.0, 1.0 - CROP_MAX, COARSE_SCALES)
    if max(large.best_place(small, coarse[i], SCREEN_WIDTH)[0] for i in SCREEN_SCALES) < MIN_CORRELATION:
        return float("inf")
    scored = [(large.best_place(small, coarse[i]), coarse[i]) for i in SCREEN_SCALES]
    if max(place[0] for place, _ in scored) < MIN_CORRELATION:
        return float("inf")
    scored += [(large.best_place(small, scale), scale) for i, scale in enumerate(coarse) if i not in SCREEN_SCALES]
    (correlation, *_), best_scale = max(scored, key=lambda item: item[0][0])
    if correlation < MIN_CORRELATION:
        return float("inf")
    step = 1 / ALIGN_WIDTH
    fine = np.arange(best_scale - 0.5 * (coarse[0] - coarse[1]), best_scale + 0.5 * (coarse[0] - coarse[1]), step)
    scored += [(large.best_place(small, scale), scale) for scale in fine if 1.0 - CROP_MAX <= scale <= 1.0]
    (correlation, row, column, shape), _ = max(scored, key=lambda item: item[0][0])
    k = large.image.width / ALIGN_WIDTH
    box = (round(column * k), round(row * k), round((column + shape[1]) * k), round((row + shape[0]) * k))
    size = (COMPARE_WIDTH, max(1, round(COMPARE_WIDTH * shape[0] / shape[1])))
    a = np.asarray(large.image.convert("RGB").crop(box).resize(size, Image.Resampling.BOX), dtype=np.float32)
    b = np.asarray(small.image.convert("RGB").resize(size, Image.Resampling.BOX), dtype=np.float32)
    return float(np.percentile(np.abs(a - b).max(axis=2), DIFF_PERCENTILE))


def same_picture(a: Image.Image | Picture, b: Image.Image | Picture) -> bool:
    """Whether one picture is the other, either inside the other; the second
    way round is tried only when the first fails."""
    first, second = (x if isinstance(x, Picture) else Picture(x) for x in (a, b))
    return (
        _difference_inside(first, second) <= SAME_PICTURE_MAX_DIFF
        or _difference_inside(second, first) <= SAME_PICTURE_MAX_DIFF
    )
