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


class _Aligner:
    """`large` in greyscale at ALIGN_WIDTH, with its integral images: the
    standard deviation of every window comes from four lookups each."""

    def __init__(self, large: Image.Image) -> None:
        self.grey = _grey(large, ALIGN_WIDTH)
        wide = self.grey.astype(np.float64)
        self.sums = np.pad(wide.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        self.squares = np.pad((wide * wide).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def _window_std(self, height: int, width: int) -> np.ndarray:
        def box(table: np.ndarray) -> np.ndarray:
            return table[height:, width:] - table[:-height, width:] - table[height:, :-width] + table[:-height, :-width]

        n = height * width
        mean = box(self.sums) / n
        return np.sqrt(np.maximum(box(self.squares) / n - mean * mean, 0.0))

    def best_place(self, small: Image.Image, scale: float) -> tuple[float, int, int, tuple[int, int]]:
        """(correlation, row, column, shape) of `small` at `scale` of the width, at its best place."""
        template = _grey(small, max(8, round(ALIGN_WIDTH * scale)))
        height, width = template.shape
        if height > self.grey.shape[0] or width > self.grey.shape[1]:
            return -1.0, 0, 0, template.shape
        windows = sliding_window_view(self.grey, template.shape)
        centred = (template - template.mean()) / (template.std() + 1e-6)
        # The template is centred, so the windows' means drop out of the numerator.
        dot = np.einsum("ijkl,kl->ij", windows, centred) / template.size
        correlation = dot / (self._window_std(height, width) + 1e-6)
        row, column = np.unravel_index(int(correlation.argmax()), correlation.shape)
        return float(correlation[row, column]), int(row), int(column), template.shape


def _difference_inside(large: Image.Image, small: Image.Image) -> float:
    """The DIFF_PERCENTILE-th difference of `small` at its best place inside
    `large`; inf when no place correlates at least MIN_CORRELATION (most
    candidates that are not copies end there, before the finer search)."""
    aligner = _Aligner(large)
    grey = small.convert("L")
    coarse = np.linspace(1.0, 1.0 - CROP_MAX, COARSE_SCALES)
    scored = [(aligner.best_place(grey, coarse[i]), coarse[i]) for i in SCREEN_SCALES]
    if max(place[0] for place, _ in scored) < MIN_CORRELATION:
        return float("inf")
    scored += [(aligner.best_place(grey, scale), scale) for i, scale in enumerate(coarse) if i not in SCREEN_SCALES]
    (correlation, *_), best_scale = max(scored, key=lambda item: item[0][0])
    if correlation < MIN_CORRELATION:
        return float("inf")
    step = 1 / ALIGN_WIDTH
    fine = np.arange(best_scale - 0.5 * (coarse[0] - coarse[1]), best_scale + 0.5 * (coarse[0] - coarse[1]), step)
    scored += [(aligner.best_place(grey, scale), scale) for scale in fine if 1.0 - CROP_MAX <= scale <= 1.0]
    (correlation, row, column, shape), _ = max(scored, key=lambda item: item[0][0])
    k = large.width / ALIGN_WIDTH
    box = (round(column * k), round(row * k), round((column + shape[1]) * k), round((row + shape[0]) * k))
    size = (COMPARE_WIDTH, max(1, round(COMPARE_WIDTH * shape[0] / shape[1])))
    a = np.asarray(large.convert("RGB").crop(box).resize(size, Image.Resampling.BOX), dtype=np.float32)
    b = np.asarray(small.convert("RGB").resize(size, Image.Resampling.BOX), dtype=np.float32)
    return float(np.percentile(np.abs(a - b).max(axis=2), DIFF_PERCENTILE))


def same_picture(a: Image.Image, b: Image.Image) -> bool:
    """Whether one picture is the other, either inside the other; the second
    way round is tried only when the first fails."""
    return _difference_inside(a, b) <= SAME_PICTURE_MAX_DIFF or _difference_inside(b, a) <= SAME_PICTURE_MAX_DIFF
