"""Row validation against the data contract, as set-based SQL statements.

Every delivery is first COPYed as text into a temporary *landing* table whose columns are
the delivery's own header. This module builds the statements that check every landing
row at once inside PostgreSQL — required values, ISO dates and timestamps, numbers,
values within their column's bounds (``nps_score`` 0–10, no negative ``offer_value``),
known ``status``, nothing after the as-of date, the entity's row rules (a campaign does not
end before it starts) — and move the rows, cast to the raw table's types, into ``_incoming``:

* ``fast_move_statement``, tried first: casts every row and moves the ones that pass cheap
  checks on the cast values. It never decides a rejection; when a value does not cast
  (the statement fails) or a row does not pass (fewer rows moved than landed), the caller
  rolls it back and runs
* ``move_statement``, the careful path: tests every value before casting it and moves each
  row either into ``_incoming`` or, with the reason, into ``_rejects``.

A delivery that keeps the contract (the usual case) is checked once, by cheap operators;
only a delivery with a bad row pays for the exact reasons. Doing this in the database
instead of per row in Python keeps the extract close to the speed of a plain COPY (see
``bench/``).

Both statements compare dates with their ISO text form: the session's DateStyle must be
ISO. Requires PostgreSQL 16+ (``pg_input_is_valid``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from psycopg import sql

from winback.extract.contract import ID_WHITESPACE, SALES_STATUSES, Column, Entity, NotBefore

# ISO 8601 only: PostgreSQL alone would also accept '10/01/2025' under some DateStyles.
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
# An ISO date first; pg_input_is_valid then checks the rest of the timestamp.
_ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}($|[T ])"
# PostgreSQL's numeric also reads NaN and infinities, which are no amounts.
_SPECIAL_NUMBERS = "%(nan|inf)%"
# Per contract type with a text form of its own: the pattern, the type it must cast to, its name in reasons.
_ISO_FORMS = {"date": (_ISO_DATE, "date", "an ISO date"), "timestamp": (_ISO_TIMESTAMP, "timestamptz", "an ISO timestamp")}
_BOOLEANS_TRUE = ("true", "t", "1", "yes", "y")
_BOOLEANS_FALSE = ("false", "f", "0", "no", "n")
# The PostgreSQL type each contract type is cast to (text stays text, boolean has its own words).
_CASTS = {"numeric": "numeric", "integer": "integer", "date": "date", "timestamp": "timestamptz"}


def _within_bounds(column: Column, value: sql.Composable) -> sql.Composable:
    """A condition true when ``value`` (of the column's PostgreSQL type) keeps the column's bounds."""
    parts = []
    if column.minimum is not None:
        parts.append(sql.SQL("{} >= {}").format(value, sql.Literal(column.minimum)))
    if column.maximum is not None:
        parts.append(sql.SQL("{} <= {}").format(value, sql.Literal(column.maximum)))
    return sql.SQL(" and ").join(parts)


class MissingColumnsError(ValueError):
    """A delivery lacks a required column: nothing is loaded from it."""

    def __init__(self, entity: str, source_object: str, missing: Sequence[str], header: Sequence[str] = ()):
        self.missing = tuple(missing)
        shown = ", ".join(repr(h) for h in header[:20]) + (", ..." if len(header) > 20 else "")
        super().__init__(
            f"{entity}: {source_object} has no required column {', '.join(repr(m) for m in missing)}; "
            f"nothing was loaded from it. Its header: {shown or 'none'}. If the export names the column "
            f"otherwise, map it in winback.toml: [columns.{entity}] {missing[0]} = \"<its header>\""
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
            raise MissingColumnsError(entity.name, source_object, missing, header)
        self.source_of = {c: by_lower.get(c) for c in entity.column_names}
        self._identifiers = {c.name for c in entity.columns if c.is_identifier}
        used = {v for v in self.source_of.values() if v}
        # Columns the contract does not know are kept as JSON (schema drift), never dropped.
        self.drift = [n for n in self.landing if n not in used]

    def _value(self, column: str) -> sql.Composable:
        source = self.source_of[column]
        if source is None:
            return sql.SQL("null::text")
        # COPY already reads an unquoted empty field as NULL; a quoted "" is empty text.
        if column in self._identifiers:  # keys are trimmed: " C0011 " is client C0011
            return sql.SQL("nullif(btrim({}, {}), '')").format(sql.Identifier(source), sql.Literal(ID_WHITESPACE))
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
            if column.max_chars:
                cases.append(sql.SQL(
                    "when length({v}) > {limit} then {n} || ' is longer than ' || {limit} || ' characters ('"
                    " || length({v}) || '): ' || quote_literal(left({v}, 60)) || '...'").format(
                    v=value, limit=sql.Literal(column.max_chars), n=name))
            if column.type == "numeric":
                cases.append(sql.SQL(
                    "when not pg_input_is_valid({v}, 'numeric') or lower({v}) similar to {special} "
                    "then {n} || ' is not a number: ' || {s}").format(
                    v=value, special=sql.Literal(_SPECIAL_NUMBERS), n=name, s=shown))
            elif column.type == "integer":
                cases.append(sql.SQL("when not pg_input_is_valid({v}, 'integer') "
                                     "then {n} || ' is not an integer: ' || {s}").format(v=value, n=name, s=shown))
            if column.bounded:  # the cast is safe: CASE got here only for a valid number
                cases.append(sql.SQL("when not ({within}) then {n} || ' ' || {v} || {what}").format(
                    within=_within_bounds(column, sql.SQL("{}::{}").format(value, sql.SQL(_CASTS[column.type]))),
                    n=name, v=value, what=sql.Literal(f" {column.out_of_range}")))
            if column.type in _ISO_FORMS:
                pattern, pg_type, what = _ISO_FORMS[column.type]
                cases.append(sql.SQL(
                    "when {v} !~ {rx} or not pg_input_is_valid({v}, {t}) then {n} || {what} || {s}").format(
                    v=value, rx=sql.Literal(pattern), t=sql.Literal(pg_type), n=name,
                    what=sql.Literal(f" is not {what}: "), s=shown))
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
        # Last: CASE reaches them only for a row whose every value passed its own checks.
        for rule in self._row_rules():
            kind = sql.SQL(_CASTS[self.entity.column(rule.column).type])
            later, earlier = self._value(rule.column), self._value(rule.other)
            cases.append(sql.SQL(
                "when {a}::{t} < {b}::{t} then {an} || ' ' || {a} || ' is before ' || {bn} || ' ' || {b}").format(
                a=later, b=earlier, t=kind, an=sql.Literal(rule.column), bn=sql.Literal(rule.other)))
        return cases

    def _row_rules(self) -> list[NotBefore]:
        """The entity's row rules this delivery can break: both of their columns in its header."""
        return [r for r in self.entity.row_rules if self.source_of[r.column] and self.source_of[r.other]]

    def _typed(self, column: str, kind: str) -> sql.Composable:
        value = self._value(column)
        if column == "status":
            return sql.SQL("coalesce(lower({}), 'completed')").format(value)
        if kind == "boolean":
            return sql.SQL("(lower({}) = any({}))").format(value, sql.Literal(list(_BOOLEANS_TRUE)))
        cast = _CASTS.get(kind)
        return value if cast is None else sql.SQL("{}::{}").format(value, sql.SQL(cast))

    def _drift(self) -> sql.Composable:
        if not self.drift:
            return sql.SQL("null::jsonb")
        return sql.SQL("nullif(jsonb_strip_nulls(jsonb_build_object({})), '{{}}'::jsonb)").format(
            sql.SQL(", ").join(
                sql.SQL("{}, nullif(btrim({}), '')").format(sql.Literal(n), sql.Identifier(n))
                for n in self.drift[:50]))

    def _incoming_columns(self) -> sql.Composable:
        return sql.SQL(", ").join(map(sql.Identifier, [*self.entity.column_names, "_extra", "_source_object",
                                                       "_load_id", "_row_number", "_delivery"]))

    def move_statement(self, as_of: dt.date, source_object: str, load_id: int, delivery: int) -> sql.Composed:
        """The careful path: check every ``_landing`` row; good rows into ``_incoming``, bad into ``_rejects``."""
        cases = self._reason_cases(as_of)
        # CASE stops at the first failed check, so a cast only sees a value that passed its check.
        reason = sql.SQL("case {} end").format(sql.SQL(" ").join(cases)) if cases else sql.SQL("null::text")
        typed = sql.SQL(", ").join(self._typed(c.name, c.type) for c in self.entity.columns)
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
        """).format(reason=reason, source=sql.Literal(source_object), columns=self._incoming_columns(),
                    typed=typed, drift=self._drift(), load_id=sql.Literal(load_id), delivery=sql.Literal(delivery))

    def _fast_checks(self, as_of: dt.date) -> list[sql.Composable]:
        """Conditions on the cast values (and the text of dates) that a row passes only if the
        careful checks pass it too. A value that does not cast never gets here: the cast fails
        the statement. A good row may fail them (then the careful path decides), a bad row never
        passes them. ``l.<column>`` is the cast value, ``l."_text <column>"`` the text of a date,
        timestamp or boolean."""
        checks: list[sql.Composable] = []
        event = self.entity.event_date
        for column in self.entity.columns:
            if self.source_of[column.name] is None:
                continue
            value = sql.SQL("l.{}").format(sql.Identifier(column.name))
            text = sql.SQL("l.{}").format(sql.Identifier(f"_text {column.name}"))
            condition: sql.Composable | None = None
            if column.type == "numeric":
                # The careful path rejects NaN and the infinities, which numeric sorts last and first.
                condition = sql.SQL("{v} > '-Infinity' and {v} < 'Infinity'").format(v=value)
            elif column.type == "date":
                # ISO: a valid date whose text is exactly its ISO output (10 bytes, so never a
                # 5-digit year) matches ^\d{4}-\d{2}-\d{2}$ and vice versa.
                condition = sql.SQL("octet_length({t}) = 10 and {v}::text = {t}").format(v=value, t=text)
            elif column.type == "timestamp":
                # ISO: the date part (read on its own, without the time zone) gives back the
                # first 10 characters, which end the text or are followed by 'T' or a space.
                condition = sql.SQL(
                    "(octet_length({t}) = 10 or {t} like '__________ %' or {t} like '__________T%') "
                    "and {t}::date::text = left({t}, 10)").format(t=text)
            elif column.type == "boolean":
                condition = sql.SQL("lower({t}) = any({ok})").format(
                    t=text, ok=sql.Literal(list(_BOOLEANS_TRUE + _BOOLEANS_FALSE)))
            elif column.name == "status":  # the cast value is lower-cased, 'completed' when empty
                condition = sql.SQL("{} = any({})").format(value, sql.Literal(sorted(SALES_STATUSES)))
            if column.bounded:
                within = _within_bounds(column, value)
                condition = within if condition is None else sql.SQL("{} and {}").format(condition, within)
            if column.max_chars:
                short = sql.SQL("length({}) <= {}").format(value, sql.Literal(column.max_chars))
                condition = short if condition is None else sql.SQL("{} and {}").format(condition, short)
            if column.name == event:
                day = value if column.type == "date" else sql.SQL("{}::date").format(value)
                after = sql.SQL("{} <= {}").format(day, sql.Literal(as_of))
                condition = after if condition is None else sql.SQL("{} and {}").format(condition, after)
            if column.required:
                checks.append(sql.SQL("{} is not null").format(value))
            if condition is not None:
                checks.append(sql.SQL("({} is null or ({}))").format(value, condition))
        for rule in self._row_rules():
            later, earlier = (sql.SQL("l.{}").format(sql.Identifier(c)) for c in (rule.column, rule.other))
            checks.append(sql.SQL("({a} is null or {b} is null or {a} >= {b})").format(a=later, b=earlier))
        return checks

    def fast_move_statement(self, as_of: dt.date, source_object: str, load_id: int, delivery: int) -> sql.Composed:
        """The optimistic path: cast every ``_landing`` row, move those that pass ``_fast_checks``.

        The caller compares the rows moved with the rows landed, and on a difference (or a
        failed cast) rolls this statement back and runs ``move_statement``; the values moved
        are the careful path's own casts, so both paths give the same rows.
        """
        casts = [sql.SQL("{} as {}").format(self._typed(c.name, c.type), sql.Identifier(c.name))
                 for c in self.entity.columns]
        texts = [sql.SQL("{} as {}").format(self._value(c.name), sql.Identifier(f"_text {c.name}"))
                 for c in self.entity.columns
                 if c.type in ("date", "timestamp", "boolean") and self.source_of[c.name] is not None]
        checks = self._fast_checks(as_of)
        where = sql.SQL(" and ").join(checks) if checks else sql.SQL("true")
        names = sql.SQL(", ").join(sql.SQL("l.{}").format(sql.Identifier(c)) for c in self.entity.column_names)
        # OFFSET 0 keeps the subquery as it is: each value is cast once, for the checks and the
        # insert alike (flattened, the casts would be repeated in the WHERE clause).
        return sql.SQL("""
            insert into _incoming ({columns})
            select {names}, l._extra, {source}, {load_id}, l._row_number, {delivery}
            from (select {casts}, {drift} as _extra, _row_number{texts} from _landing offset 0) l
            where {where}
        """).format(columns=self._incoming_columns(), names=names, source=sql.Literal(source_object),
                    load_id=sql.Literal(load_id), delivery=sql.Literal(delivery),
                    casts=sql.SQL(", ").join(casts), drift=self._drift(),
                    texts=sql.SQL("").join(sql.SQL(", ") + t for t in texts), where=where)
