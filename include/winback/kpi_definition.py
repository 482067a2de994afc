"""The quarterly KPIs as defined once, in dbt, and what is derived from that definition.

The one definition is ``dbt_project/models/kpi/_kpi__models.yml``: the enforced contracts
of ``kpi_quarterly`` and ``kpi_quarterly_breakdown`` (names and types) and, for every KPI
column of ``kpi_quarterly``, its ``config.meta.kpi`` (label, format, report placement,
published comment, per-column gate bounds). It is read here from the dbt manifest
(``dbt_project/target/manifest.json``, built by the set-up) and serves, at run time:

- :mod:`winback.publish`: the columns copied and their published types;
- :func:`apply_reporting_schema`: the published tables' KPI columns (added when missing),
  the latest-version views and their column comments (``winback bootstrap``, and publish
  before it copies);
- :mod:`winback.quality.suites`: the kpi gate's per-column checks;
- :mod:`winback.report`: the tiles and the KPI tables.

It also holds :func:`fingerprint`, the checksum of a quarter's KPI rows that the gate
records and publish compares, so that neither of them imports the other.

This module imports nothing of winback but the dbt runner: everything
else may import it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from winback import dbt

COMPANY_MODEL = "kpi_quarterly"
BREAKDOWN_MODEL = "kpi_quarterly_breakdown"
COMPANY_KEYS = ("quarter_start",)
BREAKDOWN_KEYS = ("quarter_start", "dimension", "dimension_value")
AS_OF_COLUMN = "as_of_date"

STAGED_KPI = ("kpi_staging", COMPANY_MODEL)
STAGED_BREAKDOWN = ("kpi_staging", BREAKDOWN_MODEL)
PUBLISHED_KPI = ("reporting", "kpi_quarterly_versions")
PUBLISHED_BREAKDOWN = ("reporting", "kpi_quarterly_breakdown_versions")
VIEW_KPI = ("reporting", "kpi_quarterly")
VIEW_BREAKDOWN = ("reporting", "kpi_quarterly_breakdown")
# The bookkeeping columns of a published version (sql/reporting.sql), after the figures.
VERSION_COLUMNS = ("version", "published_at", "validation_id", "reason")
VIEW_TRAILING = ("as_of_date", "version", "published_at", "reason")

FORMATS = ("count", "rate", "money", "days", "yesno")
REPORT_PLACES = ("tile", "secondary", "none")
GATE_RULES = ("between", "min", "required")
META_KEYS = ("label", "short_label", "format", "higher_is_better", "help", "comment", "report",
             "breakdown_column", "gate")
REQUIRED_META = ("label", "format", "comment")
# Types a published KPI column may have (PostgreSQL names, as the contract states them).
DATA_TYPES = ("bigint", "integer", "smallint", "numeric", "double precision", "real", "boolean", "text", "date")


class KpiDefinitionError(RuntimeError):
    """The KPI definition cannot be read or is inconsistent; one line saying where."""


@dataclass(frozen=True)
class KpiColumn:
    """One KPI column of ``kpi_quarterly`` (and ``kpi_quarterly_breakdown``)."""

    name: str
    data_type: str
    description: str
    label: str
    format: str
    comment: str
    short_label: str = ""
    higher_is_better: bool | None = None
    help: str = ""
    report: str = "none"
    breakdown_column: int | None = None
    gate: dict[str, Any] = field(default_factory=dict)

    @property
    def heading(self) -> str:
        return self.short_label or self.label


@dataclass(frozen=True)
class KpiDefinition:
    columns: tuple[KpiColumn, ...]
    # model -> its contract: ((column, data_type), ...) in yml order
    contracts: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    source: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def typed(self) -> tuple[tuple[str, str], ...]:
        """((name, published type), ...): what publish copies and fingerprints."""
        return tuple((column.name, column.data_type) for column in self.columns)

    def column(self, name: str) -> KpiColumn:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def placed(self, place: str) -> tuple[KpiColumn, ...]:
        return tuple(column for column in self.columns if column.report == place)

    @property
    def breakdown_columns(self) -> tuple[KpiColumn, ...]:
        shown = [column for column in self.columns if column.breakdown_column is not None]
        return tuple(sorted(shown, key=lambda column: column.breakdown_column))


# ----------------------------------------------------------------------------- reading
_cache: dict[str, tuple[float, KpiDefinition]] = {}
_lock = threading.Lock()


def load(manifest: Path | str | None = None) -> KpiDefinition:
    """The KPI definition from the dbt manifest (default: the project's, as the set-up built
    it: ``make setup``, the CLI and the deployment run ``dbt.ensure_manifest``; reading it
    here runs no dbt, so neither a DAG file's parse nor a task does)."""
    path = Path(manifest) if manifest is not None else dbt.manifest_path()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise KpiDefinitionError(f"{path} not found: build the dbt manifest "
                                 "(make setup, or python -c 'from winback import dbt; dbt.build_manifest()')") from None
    with _lock:
        cached = _cache.get(str(path))
        if cached and cached[0] == mtime:
            return cached[1]
    manifest_data = _read_manifest(path)
    definition = from_manifest(manifest_data, source=str(path))
    with _lock:
        _cache[str(path)] = (mtime, definition)
    return definition


def _read_manifest(path: Path, attempts: int = 10) -> dict[str, Any]:
    """The parsed manifest; dbt writes it in place, so a read during a ``dbt parse`` (another
    process) may see half a file: read again until it parses."""
    for attempt in range(attempts):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            if attempt == attempts - 1:
                raise KpiDefinitionError(f"cannot read {path}: {exc}") from None
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _model(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") == "model" and node.get("name") == name:
            return node
    raise KpiDefinitionError(f"model {name} not found in the dbt manifest")


def _contract(node: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    name = node["name"]
    if not (node.get("config", {}).get("contract") or {}).get("enforced"):
        raise KpiDefinitionError(f"model {name}: its contract is not enforced (config: contract: {{enforced: true}})")
    columns = []
    for column in node.get("columns", {}).values():
        data_type = (column.get("data_type") or "").strip().lower()
        if not data_type:
            raise KpiDefinitionError(f"model {name}: column {column['name']} has no data_type")
        columns.append((column["name"], data_type))
    return tuple(columns)


def _meta(column: dict[str, Any]) -> dict[str, Any] | None:
    meta = (column.get("config") or {}).get("meta") or column.get("meta") or {}
    return meta.get("kpi")


def _column(model: str, column: dict[str, Any], data_type: str) -> KpiColumn:
    name = column["name"]
    meta = _meta(column)
    where = f"{model}.{name} (meta.kpi)"
    if not isinstance(meta, dict):
        raise KpiDefinitionError(f"{where}: must be a mapping")
    unknown = set(meta) - set(META_KEYS)
    if unknown:
        raise KpiDefinitionError(f"{where}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(META_KEYS)})")
    missing = [key for key in REQUIRED_META if not meta.get(key)]
    if missing:
        raise KpiDefinitionError(f"{where}: {', '.join(missing)} missing")
    if meta["format"] not in FORMATS:
        raise KpiDefinitionError(f"{where}: format {meta['format']!r} is not one of {', '.join(FORMATS)}")
    report = meta.get("report", "none")
    if report not in REPORT_PLACES:
        raise KpiDefinitionError(f"{where}: report {report!r} is not one of {', '.join(REPORT_PLACES)}")
    if data_type not in DATA_TYPES:
        raise KpiDefinitionError(f"{where}: data_type {data_type!r} is not one of {', '.join(DATA_TYPES)}")
    gate = dict(meta.get("gate") or {})
    if set(gate) - set(GATE_RULES):
        raise KpiDefinitionError(f"{where}: unknown gate rules {', '.join(sorted(set(gate) - set(GATE_RULES)))}")
    between = gate.get("between")
    if between is not None and not (isinstance(between, list) and len(between) == 2
                                    and all(isinstance(v, int | float) for v in between) and between[0] <= between[1]):
        raise KpiDefinitionError(f"{where}: gate.between must be [min, max]")
    if "min" in gate and not isinstance(gate["min"], int | float):
        raise KpiDefinitionError(f"{where}: gate.min must be a number")
    position = meta.get("breakdown_column")
    if position is not None and not isinstance(position, int):
        raise KpiDefinitionError(f"{where}: breakdown_column must be a position (1, 2, ...)")
    return KpiColumn(
        name=name, data_type=data_type, description=(column.get("description") or "").strip(),
        label=meta["label"], format=meta["format"], comment=" ".join(str(meta["comment"]).split()),
        short_label=meta.get("short_label") or "", higher_is_better=meta.get("higher_is_better"),
        help=meta.get("help") or "", report=report,
        breakdown_column=position, gate=gate)


def from_manifest(manifest: dict[str, Any], source: str = "") -> KpiDefinition:
    """The definition from a parsed manifest; :class:`KpiDefinitionError` when the two KPI
    models disagree with each other or with the rules above."""
    company, breakdown = _model(manifest, COMPANY_MODEL), _model(manifest, BREAKDOWN_MODEL)
    contracts = {COMPANY_MODEL: _contract(company), BREAKDOWN_MODEL: _contract(breakdown)}
    types = dict(contracts[COMPANY_MODEL])
    columns = []
    for column in company.get("columns", {}).values():
        name = column["name"]
        is_kpi = _meta(column) is not None
        if name in (*COMPANY_KEYS, AS_OF_COLUMN):
            if is_kpi:
                raise KpiDefinitionError(f"{COMPANY_MODEL}.{name} is a key, not a KPI: remove its meta.kpi")
            continue
        if not is_kpi:
            raise KpiDefinitionError(f"{COMPANY_MODEL}.{name} has no meta.kpi: every column but "
                                     f"{', '.join((*COMPANY_KEYS, AS_OF_COLUMN))} is a KPI and needs its definition")
        columns.append(_column(COMPANY_MODEL, column, types[name]))
    if not columns:
        raise KpiDefinitionError(f"{COMPANY_MODEL} defines no KPI column")
    positions = [c.breakdown_column for c in columns if c.breakdown_column is not None]
    if len(positions) != len(set(positions)):
        raise KpiDefinitionError(f"{COMPANY_MODEL}: two KPI columns share a breakdown_column position")
    definition = KpiDefinition(columns=tuple(columns), contracts=contracts, source=source)
    expected = {COMPANY_MODEL: [*COMPANY_KEYS, *definition.names, AS_OF_COLUMN],
                BREAKDOWN_MODEL: [*BREAKDOWN_KEYS, *definition.names, AS_OF_COLUMN]}
    for model, names in expected.items():
        got = [name for name, _ in contracts[model]]
        if got != names:
            raise KpiDefinitionError(f"{model}'s contract columns {got} are not {names} (keys, the KPI columns "
                                     f"of {COMPANY_MODEL} in its order, {AS_OF_COLUMN})")
    for name, data_type in contracts[BREAKDOWN_MODEL]:
        if name in types and types[name] != data_type:
            raise KpiDefinitionError(f"{BREAKDOWN_MODEL}.{name} is {data_type} but {COMPANY_MODEL}.{name} "
                                     f"is {types[name]}")
    stray = [c["name"] for c in breakdown.get("columns", {}).values() if _meta(c)]
    if stray:
        raise KpiDefinitionError(f"{BREAKDOWN_MODEL}: meta.kpi of {', '.join(stray)} belongs on {COMPANY_MODEL} only")
    return definition


# ----------------------------------------------------------------------------- fingerprints
def _rows_digest(definition: KpiDefinition, relation: tuple[str, str], keys: tuple[str, ...], include_as_of: bool,
                 where: sql.Composable) -> sql.Composed:
    columns = [sql.Identifier(k) for k in keys]
    columns += [sql.SQL("{}::{}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in definition.typed]
    if include_as_of:
        columns.append(sql.SQL("{}::date").format(sql.Identifier(AS_OF_COLUMN)))
    return sql.SQL(
        "(select md5(coalesce(string_agg(line, E'\\n' order by line), '')) "
        "from (select row({columns})::text as line from {relation} where {where}) as lines)"
    ).format(columns=sql.SQL(", ").join(columns), relation=sql.Identifier(*relation), where=where)


def fingerprint(conn: psycopg.Connection, quarter_start: dt.date, *, version: int | None = None,
                include_as_of: bool = True, definition: KpiDefinition | None = None) -> str:
    """A checksum of one quarter's KPI rows (company row + breakdown rows).

    ``version=None``: the unpublished rows in kpi_staging; otherwise that published
    version. ``include_as_of=False`` compares the figures only (a re-computation for a
    later as-of date with the same figures is the same data).
    """
    definition = definition or load()
    if version is None:
        kpi, breakdown = STAGED_KPI, STAGED_BREAKDOWN
        where = sql.SQL("quarter_start = {}").format(sql.Literal(quarter_start))
    else:
        kpi, breakdown = PUBLISHED_KPI, PUBLISHED_BREAKDOWN
        where = sql.SQL("quarter_start = {} and version = {}").format(sql.Literal(quarter_start),
                                                                      sql.Literal(version))
    query = sql.SQL("select md5({} || ':' || {})").format(
        _rows_digest(definition, kpi, COMPANY_KEYS, include_as_of, where),
        _rows_digest(definition, breakdown, BREAKDOWN_KEYS, include_as_of, where),
    )
    return conn.execute(query).fetchone()[0]


# ----------------------------------------------------------------------------- published tables
def _columns_of(conn: psycopg.Connection, relation: tuple[str, str]) -> list[str]:
    return [row[0] for row in conn.execute(
        "select attname from pg_attribute where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped "
        "order by attnum", (".".join(relation),)).fetchall()]


def published_columns_missing(conn: psycopg.Connection, definition: KpiDefinition | None = None) -> list[str]:
    """``relation.column`` of every defined KPI column the published tables or views lack."""
    definition = definition or load()
    missing = []
    for relation in (PUBLISHED_KPI, PUBLISHED_BREAKDOWN, VIEW_KPI, VIEW_BREAKDOWN):
        present = set(_columns_of(conn, relation))
        missing += [f"{'.'.join(relation)}.{name}" for name in definition.names if name not in present]
    return missing


_VIEWS = (
    (VIEW_KPI, PUBLISHED_KPI, COMPANY_KEYS,
     "The quarterly win-back KPIs as last published: one row per closed calendar quarter (company total). "
     "Figures of a quarter only change through a new published version."),
    (VIEW_BREAKDOWN, PUBLISHED_BREAKDOWN, BREAKDOWN_KEYS,
     "The quarterly win-back KPIs as last published, per manager, region, industry, sales channel and loss reason."),
)


def _table_statements(definition: KpiDefinition, present: dict[tuple[str, str], list[str]] | None = None
                      ) -> list[sql.Composed]:
    """Add the KPI columns a published table lacks (all, without ``present``) and comment them.
    A column already there is not altered: ``alter table`` locks out the BI readers."""
    statements = []
    for table in (PUBLISHED_KPI, PUBLISHED_BREAKDOWN):
        for column in definition.columns:
            if present is None or column.name not in present[table]:
                statements.append(sql.SQL("alter table {} add column if not exists {} {}").format(
                    sql.Identifier(*table), sql.Identifier(column.name), sql.SQL(column.data_type)))
            statements.append(sql.SQL("comment on column {}.{} is {}").format(
                sql.Identifier(*table), sql.Identifier(column.name), sql.Literal(column.comment)))
    return statements


def _view_statement(definition: KpiDefinition, view: tuple[str, str], table: tuple[str, str],
                    keys: tuple[str, ...]) -> tuple[list[str], sql.Composed]:
    names = [*keys, *definition.names, *VIEW_TRAILING]
    statement = sql.SQL(
        "create or replace view {view} as select {columns} from {table} as v where v.version = ("
        "select max(p.version) from reporting.kpi_publications as p where p.quarter_start = v.quarter_start)"
    ).format(view=sql.Identifier(*view),
             columns=sql.SQL(", ").join(sql.SQL("v.{}").format(sql.Identifier(n)) for n in names),
             table=sql.Identifier(*table))
    return names, statement


def reporting_statements(definition: KpiDefinition) -> list[str]:
    """The DDL :func:`apply_reporting_schema` derives from the definition, as text (the
    published tables' KPI columns and comments, the views)."""
    statements = _table_statements(definition)
    statements += [_view_statement(definition, view, table, keys)[1] for view, table, keys, _ in _VIEWS]
    return [statement.as_string(None) for statement in statements]


def apply_reporting_schema(conn: psycopg.Connection, definition: KpiDefinition | None = None) -> None:
    """Bring the published KPI tables and views in line with the definition (idempotent).

    Run after ``sql/reporting.sql`` (which creates the tables with their keys and
    bookkeeping columns): adds every KPI column the ``*_versions`` tables lack (``alter
    table ... add column if not exists``; a column is never dropped or retyped: published
    versions are never rewritten), (re)creates the views ``reporting.kpi_quarterly`` /
    ``reporting.kpi_quarterly_breakdown`` with the KPI columns in the defined order, and
    comments every column (KPI columns: their ``meta.kpi.comment``; the others: the
    versions table's comment).
    """
    definition = definition or load()
    present = {table: _columns_of(conn, table) for table in (PUBLISHED_KPI, PUBLISHED_BREAKDOWN)}
    for statement in _table_statements(definition, present):
        conn.execute(statement)
    for view, table, keys, comment in _VIEWS:
        names, statement = _view_statement(definition, view, table, keys)
        current = _columns_of(conn, view)
        if current and current != names[:len(current)]:
            # create or replace can only append columns; a KPI added in the middle re-creates the view
            conn.execute(sql.SQL("drop view {}").format(sql.Identifier(*view)))
        if current != names:  # as defined already: not replaced (that locks out the BI readers)
            conn.execute(statement)
        conn.execute(sql.SQL("comment on view {} is {}").format(sql.Identifier(*view), sql.Literal(comment)))
        table_comments = dict(conn.execute(
            "select attname, col_description(attrelid, attnum) from pg_attribute "
            "where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped", (".".join(table),)).fetchall())
        for name in names:
            text = table_comments.get(name)
            if text:
                conn.execute(sql.SQL("comment on column {}.{} is {}").format(
                    sql.Identifier(*view), sql.Identifier(name), sql.Literal(text)))
        conn.execute(sql.SQL("grant select on {} to winback_bi_reader").format(sql.Identifier(*view)))
