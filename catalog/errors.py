"""Errors the domain raises for a client to see. The API maps each code to an
HTTP status (catalog/api/errors.py); workers record the message on the row."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.detail = detail


class Conflict(DomainError):
    code = "conflict"


class FileRejected(DomainError):
    """A file that cannot be accepted: codes `file_too_large`,
    `unsupported_media_type`, `image_too_large`, `corrupt_file`, `video_too_long`."""

    code = "corrupt_file"
