"""The JSON parser of the API: DRF's, plus the inputs that would otherwise
reach the database or Python's limits and become a 500."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


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


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            where = unstorable_text(data)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        if where:
            where = ascii(where)  # the path itself may hold the offending character
            raise ParseError(f"JSON parse error - text at {where} contains a NUL character or a lone surrogate.")
        return data
