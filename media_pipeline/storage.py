"""Reading stored media as local, seekable files, whatever the storage."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from django.core.files.storage import default_storage

COPY_CHUNK_BYTES = 1024 * 1024


@contextmanager
def open_local(key: str) -> Iterator[IO[bytes]]:
    """The stored object as a seekable binary file. A filesystem storage opens
    it in place; a remote one (S3) is copied to a temporary file first, since
    decoders seek. Raises FileNotFoundError when the object is gone."""
    try:
        path = default_storage.path(key)
    except NotImplementedError:
        path = None
    if path is not None:
        with open(path, "rb") as file:
            yield file
        return
    if not default_storage.exists(key):
        raise FileNotFoundError(key)
    with tempfile.TemporaryFile() as local, default_storage.open(key, "rb") as remote:
        shutil.copyfileobj(remote, local, COPY_CHUNK_BYTES)
        local.seek(0)
        yield local


def save_overwriting(key: str, content) -> str:
    """Store `content` at exactly `key`, replacing what is there (a re-run of a
    task writes the same thumbnails again, not copies with new names)."""
    if default_storage.exists(key):
        default_storage.delete(key)
    return default_storage.save(key, content)
