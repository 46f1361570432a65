"""The JSON parser of the API: DRF's, plus the inputs that would otherwise
reach the database or Python's limits and become a 500; and NDJSON for bulk imports."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from catalog.bulk import UnreadableRow
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
    """`application/x-ndjson`: one JSON value a line, as a list. A line that is
    not JSON (or holds text PostgreSQL cannot store) becomes an UnreadableRow
    at its place (as does an empty line), so that a bulk import reports it by
    its index, the line's, and goes on with the others."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"NDJSON parse error - the body is not {encoding}: {exc}") from None
        rows: list[Any] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():  # kept in its place: each row's index is its line's
                rows.append(UnreadableRow(f"Line {number} is empty."))
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as exc:
                rows.append(UnreadableRow(f"Line {number} is not JSON: {exc}"))
                continue
            where = unstorable_text(row)
            rows.append(
                UnreadableRow(f"Line {number}: text at {where!a} contains a NUL character or a lone surrogate.")
                if where
                else row
            )
        return rows
