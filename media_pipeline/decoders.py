"""The threads a worker reads and preprocesses media with: Pillow, NumPy and
PyAV release the GIL, so a batch's decoding uses every core, not one, while
the torch thread (media_pipeline/embedder.py) embeds."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def decoder_pool() -> ThreadPoolExecutor:
    """The process's MEDIA_DECODE_THREADS decoding threads, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(settings.MEDIA_DECODE_THREADS, thread_name_prefix="decode")
        return _pool
