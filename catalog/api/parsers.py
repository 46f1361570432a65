"""The JSON parser of the API: DRF's, plus the inputs that would otherwise
reach the database or Python's limits and become a 500; and NDJSON for bulk imports."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from catalog.bulk import read_lines
from catalog.storable import unstorable_text


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


class NDJSONParser(parsers.BaseParser):
    """`application/x-ndjson`: one JSON value a line, as a list (catalog.bulk.read_lines:
    a line that is not JSON, or is empty, becomes an error of its row in its
    place; text PostgreSQL cannot store is an error of its row too)."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"NDJSON parse error - the body is not {encoding}: {exc}") from None
        return read_lines(text)
