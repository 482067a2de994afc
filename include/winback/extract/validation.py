"""Row validation against the data contract.

Every source (a CSV or Parquet file, a table of the sales system) is read as rows of
text values under a header. A row either comes out as the text values PostgreSQL's
COPY will cast into the raw table's types, or as a reason for quarantine. The checks
are cheap per row (compiled regexes and the C-implemented ISO parsers) because they run
on every line of every load.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence

from winback.extract.contract import SALES_STATUSES, Entity

_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_BOOLEANS = {"true": "t", "t": "t", "1": "t", "yes": "t", "y": "t",
             "false": "f", "f": "f", "0": "f", "no": "f", "n": "f"}


class MissingColumnsError(ValueError):
    """A delivery lacks a required column: nothing is loaded from it."""

    def __init__(self, entity: str, source_object: str, missing: Sequence[str]):
        self.missing = tuple(missing)
        super().__init__(
            f"{entity}: {source_object} has no required column {', '.join(repr(m) for m in missing)}; "
            "nothing was loaded from it"
        )


class RowValidator:
    """Validates the rows of one delivery (a file or a table read) of one entity."""

    def __init__(self, entity: Entity, header: Sequence[str], as_of: dt.date, source_object: str):
        normalized = [h.strip().lower() for h in header]
        missing = [c for c in entity.required if c not in normalized]
        if missing:
            raise MissingColumnsError(entity.name, source_object, missing)
        self.entity = entity
        self.header = list(header)
        self.width = len(header)
        self.as_of = as_of
        self.positions = [normalized.index(c.name) if c.name in normalized else None for c in entity.columns]
        known = set(entity.column_names)
        # Columns the contract does not know are kept as JSON (schema drift), never dropped.
        self.extra = [(i, h) for i, h in enumerate(header) if normalized[i] not in known]
        self.drift_columns = [h for _, h in self.extra]
        self._checks = [self._checker(c.name, c.type, c.required) for c in entity.columns]

    def _checker(self, name: str, kind: str, required: bool):
        as_of = self.as_of
        is_event_date = name == self.entity.event_date

        def check(value: str | None) -> str | None:
            if value is None or value == "":
                if required:
                    raise _Bad(f"missing {name}")
                return "completed" if name == "status" else None
            value = value.strip()
            if kind == "text":
                if name == "status":
                    value = value.lower()
                    if value not in SALES_STATUSES:
                        raise _Bad(f"unknown status {value!r}")
                return value
            if kind == "numeric":
                if not _NUMERIC.fullmatch(value):
                    raise _Bad(f"{name} is not a number: {value!r}")
                return value
            if kind == "integer":
                if not _INTEGER.fullmatch(value):
                    raise _Bad(f"{name} is not an integer: {value!r}")
                if name == "nps_score" and not 0 <= int(value) <= 10:
                    raise _Bad(f"nps_score {value} outside 0-10")
                return value
            if kind == "date":
                try:
                    day = dt.date.fromisoformat(value)
                except ValueError:
                    raise _Bad(f"{name} is not an ISO date: {value!r}") from None
                if is_event_date and day > as_of:
                    raise _Bad(f"{name} {day} is after the as-of date {as_of}")
                return value
            if kind == "timestamp":
                try:
                    moment = dt.datetime.fromisoformat(value)
                except ValueError:
                    raise _Bad(f"{name} is not an ISO timestamp: {value!r}") from None
                if is_event_date and moment.date() > as_of:
                    raise _Bad(f"{name} {value} is after the as-of date {as_of}")
                return value
            if kind == "boolean":
                flag = _BOOLEANS.get(value.lower())
                if flag is None:
                    raise _Bad(f"{name} is not a boolean: {value!r}")
                return flag
            raise AssertionError(f"unknown column type {kind}")

        return check

    def validate(self, values: Sequence[str | None]) -> tuple[list[str | None] | None, str | None]:
        """Return (typed text values + _extra JSON, None) or (None, reason)."""
        if len(values) != self.width:
            return None, f"row has {len(values)} fields, the header has {self.width}"
        try:
            out = [check(values[pos] if pos is not None else None)
                   for check, pos in zip(self._checks, self.positions, strict=True)]
        except _Bad as bad:
            return None, str(bad)
        for value in out:
            if value is not None and "\x00" in value:
                return None, "NUL byte in a value"
        extra = {name: values[i] for i, name in self.extra if values[i] not in (None, "")}
        out.append(json.dumps(extra, ensure_ascii=False) if extra else None)
        return out, None

    def raw_text(self, values: Sequence[str | None]) -> str:
        """The raw row as JSON (header -> value when the shape fits), for the quarantine."""
        if len(values) == self.width:
            payload: object = dict(zip(self.header, values, strict=True))
        else:
            payload = list(values)
        return json.dumps(payload, ensure_ascii=False, default=str)


class _Bad(Exception):
    pass
