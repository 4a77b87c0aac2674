"""The DELIMITED format (CSV), as ksqlDB reads and writes it.

One record is one line of fields in schema order, separated by ``delimiter`` (default ``,``;
ksqlDB's ``VALUE_DELIMITER``, which also accepts the names ``TAB`` and ``SPACE``). An empty
field is null. Fields are coerced from text like the JSON format does (numbers, ``true``/
``false``, DECIMAL text, BYTES as base64, TIMESTAMP as epoch ms, DATE as epoch days, TIME as ms
of the day). ARRAY, MAP and STRUCT columns are not supported, as in ksqlDB. A record with the
wrong number of fields is a :class:`~mailroom.errors.SerdeError`.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from ._base import Serde
from ._values import coerce, coerce_fields, to_text
from .types import Schema, SqlType

_NAMED_DELIMITERS = {"TAB": "\t", "SPACE": " "}


class DelimitedSerde(Serde):
    """DELIMITED format serde."""

    format = "DELIMITED"

    def __init__(
        self,
        schema: Schema | SqlType | None,
        *,
        delimiter: str = ",",
        wrapped: bool | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(schema, wrapped=wrapped, column=column)
        delim = _NAMED_DELIMITERS.get(delimiter.upper(), delimiter) if isinstance(delimiter, str) else delimiter
        if not isinstance(delim, str) or len(delim) != 1 or delim in "\r\n\"":
            raise self.config_error(f"delimiter must be one character (or TAB/SPACE), got {delimiter!r}")
        self.delimiter = delim
        for c in self.schema.columns:
            if c.type.base in ("ARRAY", "MAP", "STRUCT"):
                raise self.config_error(f"column {c.name} has type {c.type}: DELIMITED supports only primitives and DECIMAL")

    def _encode(self, value: Any) -> bytes:
        if self.unwrapped:
            fields = [coerce(value, self.schema.columns[0].type)]
        else:
            if not isinstance(value, dict):
                raise self.error(f"a row must be a dict keyed by column name, got {type(value).__name__}")
            fields = list(coerce_fields(value, self.schema.columns).values())
        return self.delimiter.join("" if v is None else self._quote(to_text(v), i == 0) for i, v in enumerate(fields)).encode("utf-8")

    def _quote(self, text: str, first: bool = False) -> str:
        """Apache Commons CSV's minimal quoting, as ksqlDB writes DELIMITED values: quote a field
        that starts with a character up to '#' (or, for a record's first field, with anything but
        an ASCII letter or digit, e.g. ``"-10"``), holds a quote, delimiter or line break, or ends
        in whitespace."""
        if not text:
            return text
        if ((first and not (text[0].isascii() and text[0].isalnum())) or text[0] <= "#"
                or any(ch in text for ch in ('"', "\n", "\r", self.delimiter)) or text[-1] <= " "):
            return '"' + text.replace('"', '""') + '"'
        return text

    def _decode(self, data: bytes) -> Any:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.error(f"not valid UTF-8: {e.reason} at byte {e.start}") from None
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True))
        except csv.Error as e:
            raise self.error(f"malformed delimited record: {e}") from None
        if len(rows) > 1:
            raise self.error(f"expected one line, got {len(rows)}")
        fields = rows[0] if rows else [""]
        cols = self.schema.columns
        if len(fields) != len(cols):
            raise self.error(f"expected {len(cols)} field(s) ({', '.join(self.schema.names)}), got {len(fields)}")
        out = {c.name: (None if f == "" else coerce(f, c.type, c.name)) for c, f in zip(cols, fields)}
        return out[cols[0].name] if self.unwrapped else out
