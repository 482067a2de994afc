"""The quality suites as data: ``suites/<name>.json`` in this package is their one home.

A suite file lists *assets* (warehouse tables) and, per asset, Great Expectations
expectation configurations (``type``, ``kwargs``, ``description``) whose ``meta`` carries
the project's fields:

- ``name``: stable identifier of the check (``<asset>.<rule>``), used in failure lists,
  in ``audit.validation_results`` and in alerts;
- ``severity``: ``blocking`` (a failure fails the gate: nothing is published) or
  ``warning`` (reported, recorded, does not stop publishing);
- ``requires`` (optional): run-time values the check needs (``quarter_start``); the check
  is left out of runs without them;
- ``requires_delivered`` (optional): entities that must have been delivered at least once
  (``clients``): a check about a dimension means nothing before it arrives. Its absence is
  a warning of its own (the suite's ``deliveries`` say which figures it limits);
- ``load`` (optional): ``nightly`` or ``first_load``, for checks that hold only on one kind
  of run (a first load brings years of history at once; see :class:`RunContext`), and
  ``first_load_severity`` for a check that only warns on a first load;
- ``scope`` (optional): ``delivery`` for a rule about single rows, which judges only the
  rows delivered since the last raw gate that passed (its SQL keeps the rows with
  ``_loaded_at >= ${delivered_since}``): a row that passed once is not read again every
  night. Without a passed gate before it (a first load), every row.

Strings may contain placeholders ``${name}``, filled per run from the suite's
``parameters`` (its thresholds) and the run's dates: ``as_of``, ``quarter_start``,
``quarter_end``, ``last_closed_quarter`` (first day of the last quarter closed as of D),
``last_closed_quarter_end`` and ``delivered_since`` (see ``scope``). Inside an ``unexpected_rows_query`` a value becomes a
SQL literal (``date '2025-03-31'``, ``0.05``, ``array['a', 'b']``); a kwarg that is
exactly one placeholder gets the typed value; elsewhere it is shown as text. GX fills
``{batch}`` (the asset's table) itself, so SQL in a suite must not use other braces.

The SQL must run on PostgreSQL 14 to 18. GX puts ``{batch}`` in as ``(select ...) AS
subselect``, but leaves the alias off when the query contains the word JOIN (the user is
to alias it then); PostgreSQL before 16 rejects a subquery in FROM without an alias. So a
suite's SQL must not contain "join" at all (a suite that does is refused here): correlate
with EXISTS, a scalar or LATERAL subquery, a comma, or UNION ALL and GROUP BY instead.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from winback import kpi_definition
from winback.calendar import last_closed_quarter, quarter_end
from winback.kpi_definition import KpiDefinition, KpiDefinitionError

SEVERITIES = ("blocking", "warning")
LOADS = ("nightly", "first_load")
SCOPES = ("delivery",)
# delivered_since when no raw gate passed before: every row.
EVERY_ROW = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
ENTITY_NAMES = ("managers", "clients", "sales_lines", "campaigns", "contacts")
SUITE_NAMES = ("raw", "kpi")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_SQL_KWARGS = ("unexpected_rows_query",)
# GX (1.x) drops the alias of the {batch} subquery when a query contains "join" (older
# releases: anywhere, even inside a word or a string), which PostgreSQL < 16 rejects.
_JOIN = re.compile(r"join", re.IGNORECASE)


class SuiteDefinitionError(ValueError):
    """A suite file is malformed; the message names the suite and the check."""


@dataclass(frozen=True)
class Check:
    """One expectation of a suite, ready for GX (placeholders filled)."""

    name: str
    severity: str
    type: str
    kwargs: dict[str, Any]
    description: str
    meta: dict[str, Any]

    @property
    def blocking(self) -> bool:
        return self.severity == "blocking"


@dataclass(frozen=True)
class Asset:
    name: str
    schema: str
    table: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class RunContext:
    """What a gate run checks, beyond its dates: which entities were ever delivered, and
    whether the sales lines came as a *first load* (the earliest load that brought sales
    lines is the one for this as-of date: years of history at once, ``winback run`` on an
    export) rather than as a nightly delta; and since when rows count as delivered after
    the last passed raw gate (``delivered_since``; None: every row)."""

    first_load: bool = False
    delivered: frozenset[str] = frozenset(ENTITY_NAMES)
    delivered_since: dt.datetime | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    parameters: dict[str, Any]
    assets: tuple[Asset, ...]
    # Entity -> the figures its absence limits (a warning while it was never delivered).
    deliveries: dict[str, str] = field(default_factory=dict)

    @property
    def checks(self) -> list[Check]:
        return [check for asset in self.assets for check in asset.checks]


@cache
def _suite_file(name: str) -> dict[str, Any]:
    if name not in SUITE_NAMES:
        raise SuiteDefinitionError(f"unknown quality suite {name!r} (known: {', '.join(SUITE_NAMES)})")
    text = resources.files("winback.quality").joinpath("suites", f"{name}.json").read_text()
    return json.loads(text)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value).replace(".", "_")


def kpi_column_expectations(definition: KpiDefinition) -> dict[str, list[dict[str, Any]]]:
    """The kpi suite's per-column checks of the KPI columns, from their ``meta.kpi.gate``
    (asset name -> expectations, in the suite file's format; all blocking):

    - ``between: [a, b]``: ``<asset>.<column>_within_<a>_<b>``, on both KPI tables (null allowed);
    - ``min: m``: ``<asset>.<column>_not_negative`` (m = 0) or ``_at_least_<m>``, on both;
    - ``required: true``: ``kpi_quarterly.<column>_present``, the company row filled in (the
      breakdown leaves client counts empty for loss_reason).
    """
    company, breakdown = kpi_definition.COMPANY_MODEL, kpi_definition.BREAKDOWN_MODEL
    generated: dict[str, list[dict[str, Any]]] = {company: [], breakdown: []}
    for column in definition.columns:
        gate = column.gate
        for asset in (company, breakdown):
            if gate.get("between") is not None:
                low, high = gate["between"]
                generated[asset].append({
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": column.name, "min_value": low, "max_value": high},
                    "meta": {"name": f"{asset}.{column.name}_within_{_number(low)}_{_number(high)}",
                             "severity": "blocking", "kpi_column": column.name},
                    "description": f"{column.name} ({column.label}) is between {low} and {high} (or empty)."})
            if gate.get("min") is not None:
                low = gate["min"]
                rule = "not_negative" if low == 0 else f"at_least_{_number(low)}"
                generated[asset].append({
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": column.name, "min_value": low},
                    "meta": {"name": f"{asset}.{column.name}_{rule}", "severity": "blocking",
                             "kpi_column": column.name},
                    "description": f"{column.name} ({column.label}) is at least {low} (or empty)."})
        if gate.get("required"):
            generated[company].append({
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": column.name},
                "meta": {"name": f"{company}.{column.name}_present", "severity": "blocking",
                         "kpi_column": column.name},
                "description": f"{column.name} ({column.label}) is filled in for every quarter."})
    return generated


def _raw_definition(name: str, kpis: KpiDefinition | None = None) -> dict[str, Any]:
    """The suite file, and for the kpi suite the per-column checks generated from the KPI
    definition (``kpis``; default: the project's) added to its KPI assets."""
    definition = copy.deepcopy(_suite_file(name))
    if name == "kpi":
        try:
            generated = kpi_column_expectations(kpis or kpi_definition.load())
        except KpiDefinitionError as exc:
            raise SuiteDefinitionError(f"suite kpi: {exc}") from None
        assets = {asset["name"]: asset for asset in definition.get("assets", [])}
        for asset_name, expectations in generated.items():
            if asset_name not in assets:
                raise SuiteDefinitionError(f"suite kpi: no asset {asset_name} for its KPI column checks")
            assets[asset_name]["expectations"].extend(expectations)
    _check_definition(name, definition)
    return definition


def _check_definition(name: str, definition: dict[str, Any]) -> None:
    seen: set[str] = set()
    if definition.get("suite") != name:
        raise SuiteDefinitionError(f"suites/{name}.json names itself {definition.get('suite')!r}")
    for asset in definition.get("assets", []):
        for key in ("name", "schema", "table", "expectations"):
            if key not in asset:
                raise SuiteDefinitionError(f"suite {name}: an asset lacks {key!r}")
        for expectation in asset["expectations"]:
            meta = expectation.get("meta") or {}
            check = meta.get("name")
            if not check or check in seen:
                raise SuiteDefinitionError(f"suite {name}: missing or duplicate check name {check!r}")
            seen.add(check)
            if meta.get("severity") not in SEVERITIES:
                raise SuiteDefinitionError(
                    f"suite {name}: check {check} has severity {meta.get('severity')!r} "
                    f"(use one of {', '.join(SEVERITIES)})")
            if meta.get("load", "nightly") not in LOADS or meta.get("first_load_severity", "warning") \
                    not in SEVERITIES or not set(meta.get("requires_delivered", [])) <= set(ENTITY_NAMES) \
                    or meta.get("scope", SCOPES[0]) not in SCOPES:
                raise SuiteDefinitionError(f"suite {name}: check {check} has an unknown load, "
                                           f"first_load_severity, requires_delivered or scope")
            if meta.get("scope") == "delivery" and "${delivered_since}" not in json.dumps(expectation["kwargs"]):
                raise SuiteDefinitionError(f"suite {name}: check {check} has scope delivery but its SQL does not "
                                           "keep the rows delivered since ${delivered_since}")
            if not expectation.get("type") or not isinstance(expectation.get("kwargs"), dict):
                raise SuiteDefinitionError(f"suite {name}: check {check} lacks type or kwargs")
            for key in _SQL_KWARGS:
                query = expectation["kwargs"].get(key)
                if isinstance(query, str) and _JOIN.search(query):
                    raise SuiteDefinitionError(
                        f"suite {name}: check {check} contains 'join': Great Expectations then leaves the "
                        "{batch} subquery without an alias, which PostgreSQL before 16 rejects; use EXISTS, "
                        "a scalar or LATERAL subquery, a comma or UNION ALL instead")


def run_values(as_of: dt.date, quarter_start: dt.date | None,
               delivered_since: dt.datetime | None = None) -> dict[str, Any]:
    closed = last_closed_quarter(as_of)
    values: dict[str, Any] = {"as_of": as_of, "last_closed_quarter": closed,
                              "last_closed_quarter_end": quarter_end(closed),
                              "delivered_since": delivered_since or EVERY_ROW}
    if quarter_start is not None:
        values.update(quarter_start=quarter_start, quarter_end=quarter_end(quarter_start))
    return values


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return f"timestamptz '{value.isoformat()}'"
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        return "array[" + ", ".join(_sql_literal(item) for item in value) + "]"
    raise SuiteDefinitionError(f"cannot use {value!r} in SQL")


def _text(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value)
    return str(value)


def _fill(template: str, values: dict[str, Any], render, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise SuiteDefinitionError(f"{where}: unknown placeholder ${{{key}}}")
        return render(values[key])

    return _PLACEHOLDER.sub(replace, template)


def _fill_kwarg(key: str, value: Any, values: dict[str, Any], where: str) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and key not in _SQL_KWARGS:
            if whole.group(1) not in values:
                raise SuiteDefinitionError(f"{where}: unknown placeholder {value}")
            return copy.deepcopy(values[whole.group(1)])
        return _fill(value, values, _sql_literal if key in _SQL_KWARGS else _text, where)
    if isinstance(value, list):
        return [_fill_kwarg(key, item, values, where) for item in value]
    return value


def _applies(meta: dict[str, Any], context: RunContext | None) -> bool:
    if context is None:  # every check (e.g. to list them)
        return True
    if not set(meta.get("requires_delivered", [])) <= context.delivered:
        return False
    load = meta.get("load")
    return load is None or load == ("first_load" if context.first_load else "nightly")


def load_suite(name: str, as_of: dt.date, quarter_start: dt.date | None = None,
               context: RunContext | None = None, kpis: KpiDefinition | None = None) -> Suite:
    """The suite ``name`` with every placeholder filled for this run; checks whose
    ``requires`` are not given (e.g. no quarter), or that do not apply in ``context``
    (``requires_delivered``, ``load``), are left out. Without a context, every check.
    ``kpis``: the KPI definition the kpi suite's per-column checks come from (default: the
    project's, :func:`winback.kpi_definition.load`)."""
    definition = _raw_definition(name, kpis)
    parameters = dict(definition.get("parameters") or {})
    values = {**parameters, **run_values(as_of, quarter_start, context.delivered_since if context else None)}
    assets = []
    for asset in definition["assets"]:
        checks = []
        for expectation in asset["expectations"]:
            meta = dict(expectation.get("meta") or {})
            where = f"suite {name}, check {meta['name']}"
            if any(values.get(required) is None for required in meta.get("requires", [])):
                continue
            if not _applies(meta, context):
                continue
            severity = meta["severity"]
            if context is not None and context.first_load:
                severity = meta.get("first_load_severity", severity)
            kwargs = {key: _fill_kwarg(key, value, values, where) for key, value in expectation["kwargs"].items()}
            description = _fill(expectation.get("description") or meta["name"], values, _text, where)
            checks.append(Check(name=meta["name"], severity=severity, type=expectation["type"],
                                kwargs=kwargs, description=description, meta=meta))
        assets.append(Asset(name=asset["name"], schema=asset["schema"], table=asset["table"], checks=tuple(checks)))
    return Suite(name=name, description=definition.get("description", ""), parameters=parameters,
                 assets=tuple(assets), deliveries=dict(definition.get("deliveries") or {}))
