"""Row validation against the data contract, as one set-based SQL statement.

Every delivery is first COPYed as text into a temporary *landing* table whose columns are
the delivery's own header. This module builds the statement that checks every landing
row at once inside PostgreSQL — required values, ISO dates and timestamps, numbers,
``nps_score`` 0–10, known ``status``, nothing after the as-of date — and moves each row
either, cast to the raw table's types, into ``_incoming`` or, with its reason, into
``_rejects``. Doing this in the database instead of per row in Python is what keeps the
extract close to the speed of a plain COPY (see ``bench/``).

Requires PostgreSQL 16+ (``pg_input_is_valid``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from psycopg import sql

from winback.extract.contract import SALES_STATUSES, Entity

# ISO 8601 only: PostgreSQL alone would also accept '10/01/2025' under some DateStyles.
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
# An ISO date first; pg_input_is_valid then checks the rest of the timestamp.
_ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}($|[T ])"
# PostgreSQL's numeric also reads NaN and infinities, which are no amounts.
_SPECIAL_NUMBERS = "%(nan|inf)%"
_BOOLEANS_TRUE = ("true", "t", "1", "yes", "y")
_BOOLEANS_FALSE = ("false", "f", "0", "no", "n")


class MissingColumnsError(ValueError):
    """A delivery lacks a required column: nothing is loaded from it."""

    def __init__(self, entity: str, source_object: str, missing: Sequence[str]):
        self.missing = tuple(missing)
        super().__init__(
            f"{entity}: {source_object} has no required column {', '.join(repr(m) for m in missing)}; "
            "nothing was loaded from it"
        )


def landing_columns(header: Sequence[str]) -> list[str]:
    """Column names for the landing table: the header, trimmed, unique, at most 63 bytes."""
    names: list[str] = []
    for position, raw in enumerate(header, start=1):
        name = (raw or "").strip()[:60] or f"column_{position}"
        candidate, suffix = name, 2
        while candidate.lower() in (n.lower() for n in names):
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        names.append(candidate)
    return names


class DeliveryColumns:
    """Maps a delivery's header onto the entity's contract columns."""

    def __init__(self, entity: Entity, header: Sequence[str], source_object: str):
        self.entity = entity
        self.landing = landing_columns(header)
        by_lower = {}
        for name in self.landing:
            by_lower.setdefault(name.lower(), name)
        missing = [c for c in entity.required if c not in by_lower]
        if missing:
            raise MissingColumnsError(entity.name, source_object, missing)
        self.source_of = {c: by_lower.get(c) for c in entity.column_names}
        used = {v for v in self.source_of.values() if v}
        # Columns the contract does not know are kept as JSON (schema drift), never dropped.
        self.drift = [n for n in self.landing if n not in used]

    def _value(self, column: str) -> sql.Composable:
        source = self.source_of[column]
        if source is None:
            return sql.SQL("null::text")
        # COPY already reads an unquoted empty field as NULL; a quoted "" is empty text.
        return sql.SQL("nullif({}, '')").format(sql.Identifier(source))

    def _reason_cases(self, as_of: dt.date) -> list[sql.Composable]:
        cases: list[sql.Composable] = []
        event = self.entity.event_date
        for column in self.entity.columns:
            if self.source_of[column.name] is None:
                continue
            value = self._value(column.name)
            name = sql.Literal(column.name)
            shown = sql.SQL("quote_literal({})").format(value)
            if column.required:
                cases.append(sql.SQL("when {v} is null then 'missing ' || {n}").format(v=value, n=name))
            if column.type == "numeric":
                cases.append(sql.SQL(
                    "when not pg_input_is_valid({v}, 'numeric') or lower({v}) similar to {special} "
                    "then {n} || ' is not a number: ' || {s}").format(
                    v=value, special=sql.Literal(_SPECIAL_NUMBERS), n=name, s=shown))
            elif column.type == "integer":
                cases.append(sql.SQL("when not pg_input_is_valid({v}, 'integer') "
                                     "then {n} || ' is not an integer: ' || {s}").format(v=value, n=name, s=shown))
                if column.name == "nps_score":
                    cases.append(sql.SQL("when {v}::integer not between 0 and 10 "
                                         "then 'nps_score ' || {v} || ' outside 0-10'").format(v=value))
            elif column.type == "date":
                cases.append(sql.SQL(
                    "when {v} !~ {rx} or not pg_input_is_valid({v}, 'date') "
                    "then {n} || ' is not an ISO date: ' || {s}").format(
                    v=value, rx=sql.Literal(_ISO_DATE), n=name, s=shown))
            elif column.type == "timestamp":
                cases.append(sql.SQL(
                    "when {v} !~ {rx} or not pg_input_is_valid({v}, 'timestamptz') "
                    "then {n} || ' is not an ISO timestamp: ' || {s}").format(
                    v=value, rx=sql.Literal(_ISO_TIMESTAMP), n=name, s=shown))
            elif column.type == "boolean":
                cases.append(sql.SQL("when lower({v}) <> all({ok}) then {n} || ' is not a boolean: ' || {s}").format(
                    v=value, ok=sql.Literal(list(_BOOLEANS_TRUE + _BOOLEANS_FALSE)), n=name, s=shown))
            if column.name == "status":
                cases.append(sql.SQL("when lower({v}) <> all({ok}) then 'unknown status ' || {s}").format(
                    v=value, ok=sql.Literal(sorted(SALES_STATUSES)), s=shown))
            if column.name == event:
                cast = "date" if column.type == "date" else "timestamptz"
                cases.append(sql.SQL(
                    "when {v}::{t}::date > {d} then {n} || ' ' || {v} || ' is after the as-of date ' || {d}"
                ).format(v=value, t=sql.SQL(cast), d=sql.Literal(as_of), n=name))
        return cases

    def _typed(self, column: str, kind: str) -> sql.Composable:
        value = self._value(column)
        if column == "status":
            return sql.SQL("coalesce(lower({}), 'completed')").format(value)
        if kind == "boolean":
            return sql.SQL("(lower({}) = any({}))").format(value, sql.Literal(list(_BOOLEANS_TRUE)))
        cast = {"text": None, "numeric": "numeric", "integer": "integer", "date": "date",
                "timestamp": "timestamptz"}[kind]
        return value if cast is None else sql.SQL("{}::{}").format(value, sql.SQL(cast))

    def move_statement(self, as_of: dt.date, source_object: str, load_id: int, delivery: int) -> sql.Composed:
        """Check every ``_landing`` row; good rows into ``_incoming``, bad into ``_rejects``."""
        cases = self._reason_cases(as_of)
        # CASE stops at the first failed check, so a cast only sees a value that passed its check.
        reason = sql.SQL("case {} end").format(sql.SQL(" ").join(cases)) if cases else sql.SQL("null::text")
        drift = sql.SQL("null::jsonb")
        if self.drift:
            drift = sql.SQL("nullif(jsonb_strip_nulls(jsonb_build_object({})), '{{}}'::jsonb)").format(
                sql.SQL(", ").join(
                    sql.SQL("{}, nullif(btrim({}), '')").format(sql.Literal(n), sql.Identifier(n))
                    for n in self.drift[:50]))
        typed = sql.SQL(", ").join(self._typed(c.name, c.type) for c in self.entity.columns)
        columns = sql.SQL(", ").join(map(sql.Identifier, [*self.entity.column_names, "_extra", "_source_object",
                                                          "_load_id", "_row_number", "_delivery"]))
        return sql.SQL("""
            with checked as materialized (
                select l.*, {reason} as _reason from _landing l
            ), rejected as (
                insert into _rejects (source_object, row_number, raw_row, reason)
                select {source}, _row_number, (to_jsonb(c) - '_row_number' - '_reason')::text, _reason
                from checked c where _reason is not null
            )
            insert into _incoming ({columns})
            select {typed}, {drift}, {source}, {load_id}, _row_number, {delivery}
            from checked l where _reason is null
        """).format(reason=reason, source=sql.Literal(source_object), columns=columns,
                    typed=typed, drift=drift, load_id=sql.Literal(load_id), delivery=sql.Literal(delivery))
