"""Text PostgreSQL cannot store, found before it reaches the database (where
it would be a 500): the API's JSON bodies, its form and query fields, and the
rows of a bulk import."""

from __future__ import annotations

from typing import Any


def unstorable_text(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) that PostgreSQL cannot
    store: a NUL character or a lone UTF-16 surrogate; None if there is none."""
    if isinstance(value, str):
        return path or "(body)" if "\x00" in value or not _encodable(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            found = unstorable_text(key, where) or unstorable_text(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_text(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
