"""Render the quarterly KPI review: one self-contained HTML file (and a PDF when possible).

The HTML has no external reference at all (inline CSS, inline SVG charts, no script, no
font or image URLs; a Content-Security-Policy forbids loading anything), prints on A4
landscape with one section per page, and shows the quarter and the as-of date at the top
of every section and in the footer of every printed page. Every KPI figure carries its
exact value in ``data-*`` attributes (``data-kpi``, ``data-value``, ``data-previous``,
``data-last-year``), so the page can be checked against the reporting tables.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from winback import kpi_definition, warehouse
from winback.calendar import quarter_label, shift_quarters
from winback.config import get_settings
from winback.kpi_definition import KpiColumn, KpiDefinition
from winback.report import charts
from winback.report.data import (
    ABC_CLASSES,
    ABC_XYZ_CLASSES,
    MANAGERS_SHOWN,
    MIN_SEGMENT_COMPARED,
    BiViewsMissing,
    ReportData,
    ReportError,
    bi_views,
    check_quarter,
    load,
)

log = logging.getLogger(__name__)

TREND_QUARTERS = 12
DASH = "—"


# ----------------------------------------------------------------------------- formatting
def raw(value: Any) -> str:
    """The exact value for a ``data-*`` attribute ('' for null)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _whole(value: Decimal | float | int) -> int:
    return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fmt(kind: str, value: Any) -> str:
    """A value as the page shows it; '—' for null."""
    if value is None:
        return DASH
    if kind == "count":
        return f"{int(value):,}"
    if kind == "rate":
        return f"{float(value) * 100:.1f} %"
    if kind == "points":  # a difference of two rates, in percentage points
        return f"{float(value) * 100:+.1f} pp"
    if kind == "money":
        return f"{_whole(value):,}"
    if kind == "days":
        return f"{float(value):g} days"
    if kind == "date":
        return value.isoformat()
    if kind == "yesno":
        return "yes" if value else "no"
    return str(value)


def fmt_delta(kind: str, current: Any, base: Any) -> str:
    """Change from ``base`` to ``current``: counts and money with the relative change,
    rates in percentage points, days in days."""
    if current is None or base is None:
        return DASH
    if kind == "rate":
        points = (float(current) - float(base)) * 100
        return "±0.0 pp" if round(points, 1) == 0 else f"{points:+.1f} pp"
    if kind == "days":
        days = float(current) - float(base)
        return "±0 days" if days == 0 else f"{days:+g} days"
    difference = Decimal(str(current)) - Decimal(str(base))
    whole = _whole(difference)
    text = "±0" if whole == 0 and difference == 0 else f"{whole:+,}"
    if Decimal(str(base)) != 0 and difference != 0:
        text += f" ({difference / abs(Decimal(str(base))) * 100:+.0f} %)"
    return text


def _tone(current: Any, base: Any, higher_is_better: bool | None) -> str:
    if current is None or base is None or higher_is_better is None:
        return "neutral"
    if current == base:
        return "neutral"
    return "better" if (current > base) == higher_is_better else "worse"


def _utc(value: dt.datetime | None) -> str:
    if value is None:
        return DASH
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# ----------------------------------------------------------------------------- tiles
@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    kind: str
    higher_is_better: bool | None
    help: str


# The tiles, the secondary figures and the KPI tables come from the KPI definition
# (meta.kpi of dbt_project/models/kpi/_kpi__models.yml): label, format, colouring, help,
# placement (report: tile | secondary), breakdown_column. The trend table shows the tiles.
def _kpi(column: KpiColumn) -> Kpi:
    return Kpi(column.name, column.label, column.format, column.higher_is_better, column.help)


def tiles(definition: KpiDefinition) -> tuple[Kpi, ...]:
    return tuple(_kpi(column) for column in definition.placed("tile"))


def secondary(definition: KpiDefinition) -> tuple[Kpi, ...]:
    return tuple(_kpi(column) for column in definition.placed("secondary"))


def table_columns(columns: tuple[KpiColumn, ...]) -> list[dict[str, str]]:
    return [{"key": column.name, "heading": column.heading, "kind": column.format} for column in columns]


# KPI columns this module names itself (the summary's sentences, the notes, the trend
# charts): the report refuses a definition without them (tests/unit/test_kpi_definition.py
# also checks that no other KPI name is written here).
NAMED_KPIS = ("new_clients", "lost_clients", "returned_clients", "churn_rate", "winback_rate", "revenue_lost_ttm",
              "revenue_recovered_90d", "is_window_complete", "lost_contacted_share")


def check_definition(definition: KpiDefinition) -> None:
    missing = [name for name in NAMED_KPIS if name not in definition.names]
    if missing:
        raise ReportError(f"the report names KPI columns the KPI definition lacks: {', '.join(missing)} "
                          f"({definition.source or 'dbt manifest'})")


def _missing_comparison(data: ReportData, offset: int) -> str:
    target = shift_quarters(data.quarter_start, offset)
    earlier = [row for row in data.history if row["quarter_start"] <= target]
    if offset == -1:
        return f"{quarter_label(target)} not published" if earlier else "no previous quarter"
    return f"{quarter_label(target)} not published" if earlier else "no quarter a year before"


def _tile(kpi: Kpi, data: ReportData) -> dict[str, Any]:
    current = data.kpi[kpi.key]
    comparisons = []
    for name, row, offset in (("previous", data.previous, -1), ("last-year", data.last_year, -4)):
        target = quarter_label(shift_quarters(data.quarter_start, offset))
        if row is None:
            comparisons.append({"name": name, "text": _missing_comparison(data, offset), "against": "",
                                "tone": "none", "available": False})
            continue
        base = row[kpi.key]
        comparisons.append({"name": name, "text": fmt_delta(kpi.kind, current, base), "against": f"vs {target}",
                            "tone": _tone(current, base, kpi.higher_is_better), "available": True})
    note = ""
    if kpi.key == "revenue_recovered_90d" and data.kpi["is_window_complete"] is False:
        note = f"preliminary: some {_days('revenue_recovered_window_days')}-day windows are still open"
    if current is None and kpi.kind == "rate":
        note = "no base to divide by (0)"
        if kpi.key == "lost_contacted_share" and data.kpi["lost_clients"]:
            note = "unknown: no contact log delivered"
    return {
        "key": kpi.key, "label": kpi.label, "help": kpi.help, "kind": kpi.kind,
        "text": fmt(kpi.kind, current), "value": raw(current),
        "previous": raw(data.previous[kpi.key]) if data.previous else "",
        "last_year": raw(data.last_year[kpi.key]) if data.last_year else "",
        "comparisons": comparisons, "note": note,
    }


def _days(var: str) -> int:
    """A window of the metric contract in days, as the pipeline runs dbt (the user's overrides
    included): the report's sentences name it, never a copy of the number."""
    return int(get_settings().dbt_vars()[var])


def _longest_days(var: str) -> int:
    """The longest of a list of windows of the metric contract, in days (as _days)."""
    return max(int(days) for days in get_settings().dbt_vars()[var])


def _summary(data: ReportData) -> list[str]:
    k = data.kpi
    sentences = []
    if k["lost_clients"]:
        sentences.append(f"{fmt('count', k['lost_clients'])} clients became lost "
                         f"(churn rate {fmt('rate', k['churn_rate'])}), taking "
                         f"{fmt('money', k['revenue_lost_ttm'])} of revenue of the "
                         f"{_days('revenue_lost_window_days')} days before.")
    else:
        sentences.append("No client became lost this quarter.")
    if k["returned_clients"]:
        sentences.append(f"{fmt('count', k['returned_clients'])} lost clients came back "
                         f"(win-back rate {fmt('rate', k['winback_rate'])}), bringing "
                         f"{fmt('money', k['revenue_recovered_90d'])} in their first "
                         f"{_days('revenue_recovered_window_days')} days"
                         + (" so far." if k["is_window_complete"] is False else "."))
    else:
        sentences.append("No returns this quarter.")
    if k["new_clients"]:
        sentences.append(f"{fmt('count', k['new_clients'])} new clients made their first purchase.")
    return sentences


# ----------------------------------------------------------------------------- charts
def _rate_top(values: list[float]) -> float:
    biggest = max(values, default=0.0)
    return next((top for top in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0) if biggest <= top), max(biggest, 1.0))


def _trend_charts(data: ReportData) -> dict[str, Markup]:
    history = data.history[-TREND_QUARTERS:]
    labels = [quarter_label(row["quarter_start"]) for row in history]
    label = {name: data.definition.column(name).label for name in ("lost_clients", "returned_clients",
                                                                    "churn_rate", "winback_rate")}
    keys = [row["quarter_start"].isoformat() for row in history]
    highlight = len(history) - 1
    counts = charts.grouped_bars(
        "trend-counts", "Lost and won-back clients per quarter",
        "Bars: clients that became lost and lost clients that came back, per published quarter.",
        labels, [charts.Series("lost_clients", label["lost_clients"], charts.VERMILLION,
                               [r["lost_clients"] for r in history]),
                 charts.Series("returned_clients", label["returned_clients"], charts.BLUE,
                               [r["returned_clients"] for r in history])],
        highlight=highlight, category_keys=keys)
    rates = [float(r[k]) for r in history for k in ("churn_rate", "winback_rate") if r[k] is not None]
    lines = [
        charts.Line("churn_rate", label["churn_rate"], charts.VERMILLION,
                    [(i, r["churn_rate"], True) for i, r in enumerate(history)]),
        charts.Line("winback_rate", label["winback_rate"], charts.BLUE,
                    [(i, r["winback_rate"], True) for i, r in enumerate(history)], dashed=True),
    ]
    rate_chart = charts.line_chart(
        "trend-rates", "Churn and win-back rates per quarter",
        "Lines: churn rate and win-back rate of every published quarter; a gap where a rate has no base.",
        lines, [(i, label) for i, label in enumerate(labels)], y_max=_rate_top(rates),
        highlight_x=highlight, point_keys=keys)
    return {"trend_counts": Markup(counts), "trend_rates": Markup(rate_chart)}


def _cohort_chart(data: ReportData) -> Markup | None:
    if not data.cohorts:
        return None
    lines = []
    for index, row in enumerate(data.cohorts):
        colour = charts.SERIES_COLOURS[index % len(charts.SERIES_COLOURS)]
        lines.append(charts.Line(
            row["cohort_quarter"].isoformat(),
            f"lost {quarter_label(row['cohort_quarter'])} ({row['lost_clients']:,})", colour,
            [(90, row["return_rate_90_days"], row["is_final_90_days"]),
             (180, row["return_rate_180_days"], row["is_final_180_days"]),
             (365, row["return_rate_365_days"], row["is_final_365_days"])]))
    values = [float(v) for row in data.cohorts for v in
              (row["return_rate_90_days"], row["return_rate_180_days"], row["return_rate_365_days"]) if v is not None]
    return Markup(charts.line_chart(
        "cohort-curves", "Return rate by lost cohort",
        "For the clients that became lost in each quarter: the share that came back within 90, 180 and 365 days. "
        "Hollow points and dashed segments: the window has not closed for every client yet.",
        lines, [(90, "90 days"), (180, "180 days"), (365, "365 days")], y_max=_rate_top(values)))


def _heatmaps(data: ReportData) -> dict[str, Markup | None]:
    result: dict[str, Markup | None] = {}
    for segmentation, classes in (("abc_xyz", ABC_XYZ_CLASSES), ("abc", ABC_CLASSES)):
        cells = {(r["from_segment"], r["to_segment"]): r["clients"] for r in data.migration
                 if r["segmentation"] == segmentation}
        if not cells:
            result[segmentation] = None
            continue
        title = ("ABC-XYZ segment migration" if segmentation == "abc_xyz" else "ABC segment migration")
        result[segmentation] = Markup(charts.heatmap(
            f"heatmap-{segmentation.replace('_', '-')}", f"{title}, {quarter_label(data.quarter_start)}",
            "Clients by segment at the previous quarter end (rows) and at this quarter end (columns).",
            classes, cells))
    return result


# ----------------------------------------------------------------------------- page model
def _migration_summary(data: ReportData) -> dict[str, int] | None:
    rows = [r for r in data.migration if r["segmentation"] == "abc_xyz"]
    if not rows:
        return None
    return {"clients": sum(r["clients"] for r in rows if r["to_segment"] != "N" or r["from_segment"] != "N"),
            "moved": sum(r["clients"] for r in rows if r["from_segment"] != r["to_segment"]),
            "kept": sum(r["clients"] for r in rows if r["from_segment"] == r["to_segment"])}


def _gate_status(data: ReportData) -> dict[str, Any]:
    gate = data.gate
    if gate is None:
        return {"verdict": "unknown", "label": "details not available", "note": data.gate_note}
    if not gate["success"]:
        verdict, label = "failed", "FAILED"
    elif gate["waivers"]:
        verdict, label = "waived", "passed with waived checks"
    elif gate["failed_warning"]:
        verdict, label = "warning", "passed with warnings"
    else:
        verdict, label = "passed", "passed"
    return {"verdict": verdict, "label": label, "note": None}


def managers_shown(rows: list[dict[str, Any]], most_relevant: Callable[[dict[str, Any]], Any] | None = None,
                   always: Callable[[dict[str, Any]], bool] = lambda row: False) -> tuple[list[dict[str, Any]], int]:
    """A per-manager table as the report prints it, and how many managers it leaves out.

    Up to :data:`MANAGERS_SHOWN` managers, in the table's own order; beyond that the first
    ones by ``most_relevant`` (default: the table's order, which puts the managers to look
    at first), and the rows ``always`` keeps (the company row) besides."""
    kept = [row for row in rows if always(row)]
    managers = [row for row in rows if not always(row)]
    if len(managers) <= MANAGERS_SHOWN:
        return rows, 0
    chosen = sorted(managers, key=most_relevant)[:MANAGERS_SHOWN] if most_relevant else managers[:MANAGERS_SHOWN]
    picked = {id(row) for row in chosen}
    return kept + [row for row in managers if id(row) in picked], len(managers) - MANAGERS_SHOWN


def _manager_tables(data: ReportData) -> dict[str, Any]:
    """The per-manager tables, capped (:func:`managers_shown`), each with ``<name>_more``."""
    tables = {
        # the largest books of clients; the most won back; the lowest recording rate and
        # contact coverage (the queries' order); the most answers; the most lost clients
        "manager_moves": managers_shown(data.manager_moves, lambda row: -(row["clients"] or 0)),
        "winback_by_manager": managers_shown(data.winback_by_manager),
        "reason_recording": managers_shown(data.reason_recording),
        "contact_coverage": managers_shown(data.contact_coverage),
        "nps": managers_shown(data.nps, lambda row: -(row["responses"] or 0),
                              always=lambda row: row["dimension"] != "manager"),
        "breakdown_manager": managers_shown(data.breakdown.get("manager", []),
                                            lambda row: -(row.get("lost_clients") or 0)),
    }
    context: dict[str, Any] = {}
    for name, (rows, more) in tables.items():
        context[name], context[f"{name}_more"] = rows, more
    return context


def build_context(data: ReportData) -> dict[str, Any]:
    check_definition(data.definition)
    label = quarter_label(data.quarter_start)
    details_note = None
    if data.details_as_of and data.details_as_of != data.as_of:
        details_note = (f"The detail sections read the marts as last built (data as of {data.details_as_of}); "
                        f"the KPI figures are those published (data as of {data.as_of}).")
    lost_reason = data.breakdown.get("loss_reason", [])
    shown = data.history[-TREND_QUARTERS:]
    gaps, quarter = [], shown[0]["quarter_start"]
    while quarter < data.quarter_start:
        if quarter not in {row["quarter_start"] for row in shown}:
            gaps.append(quarter_label(quarter))
        quarter = shift_quarters(quarter, 1)
    return {
        "quarter": data.quarter_start, "quarter_label": label, "as_of": data.as_of, "version": data.version,
        "quarter_end": shift_quarters(data.quarter_start, 1) - dt.timedelta(days=1),
        "previous_label": quarter_label(shift_quarters(data.quarter_start, -1)),
        "last_year_label": quarter_label(shift_quarters(data.quarter_start, -4)),
        "tiles": [_tile(k, data) for k in tiles(data.definition)],
        "secondary": [_tile(k, data) for k in secondary(data.definition)],
        "trend_columns": table_columns(data.definition.placed("tile")),
        "breakdown_columns": table_columns(data.definition.breakdown_columns),
        "summary": _summary(data), "kpi": data.kpi, "history": shown, "unpublished_in_trend": gaps,
        "charts": {**_trend_charts(data), "cohorts": _cohort_chart(data), **_heatmaps(data)},
        "cohorts": data.cohorts, "migration_summary": _migration_summary(data),
        **_manager_tables(data), "lost_top": data.lost_top, "lost_total": data.lost_total,
        "winback_by_channel": data.winback_by_channel,
        "breakdown_loss_reason": [r for r in lost_reason if r["lost_clients"] or r["returned_clients"]],
        "breakdown_sales_channel": data.breakdown.get("sales_channel", []),
        "breakdown_region": data.breakdown.get("region", []), "breakdown_industry": data.breakdown.get("industry", []),
        "work_list_top": data.work_list_top, "work_list_total": data.work_list_total,
        "coverage_window_days": _days("contact_coverage_window_days"),
        "deviations_top": data.deviations_top, "deviations_summary": data.deviations_summary,
        "promoters_top": data.promoters_top,
        "uplift_by_offer": data.uplift_by_offer, "uplift_by_offer_segment": data.uplift_by_offer_segment,
        "campaigns": data.campaigns, "campaign_summary": data.campaign_summary,
        "campaign_window_days": _longest_days("campaign_return_windows_days"),
        "min_segment_compared": MIN_SEGMENT_COMPARED,
        "not_converted": data.not_converted, "not_converted_summary": data.not_converted_summary,
        "at_risk_top": data.at_risk_top, "at_risk_summary": data.at_risk_summary, "backtest": data.backtest,
        "backtest_horizon_days": _days("at_risk_backtest_horizon_days"),
        "publication": data.publication, "versions": data.versions, "gate": data.gate,
        "gate_status": _gate_status(data), "details_as_of": data.details_as_of, "details_note": details_note,
        "published_at": _utc(data.publication["published_at"]),
        "gate_run_at": _utc(data.gate["created_at"]) if data.gate else DASH,
    }


@functools.cache
def _environment() -> Environment:
    # One per process: the environment keeps the compiled template, and compiling it took
    # longer than rendering a quarter (the quarterly DAG renders a dozen in a backfill).
    env = Environment(loader=PackageLoader("winback.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["fmt"] = lambda value, kind: fmt(kind, value)
    env.filters["raw"] = raw
    env.filters["utc"] = _utc
    env.globals["qlabel"] = quarter_label
    return env


def render_html(data: ReportData) -> str:
    return _environment().get_template("report.html.j2").render(**build_context(data))


def report_stem(quarter_start: dt.date, version: int) -> str:
    return f"winback-report-{quarter_start.year}-Q{(quarter_start.month - 1) // 3 + 1}-v{version}"


def render_report(dsn: str | None, quarter_start: dt.date, out_dir: Path, *, pdf: bool = True) -> Path:
    """Render the published quarter ``quarter_start`` into ``out_dir``; return the HTML file.

    Reads only the published reporting layer (see :mod:`winback.report.data`). With
    ``pdf=True`` a PDF is written next to the HTML when a PDF engine is available (see
    :func:`winback.report.pdf.write_pdf`). Raises :class:`ReportError` (one line) when the
    quarter is not published, and :class:`BiViewsMissing` when dbt has not built the BI
    views (dbt models, rebuilt with the marts).
    """
    quarter_start = check_quarter(quarter_start)
    with warehouse.connect(dsn) as conn:
        conn.read_only = True
        if conn.execute("select to_regclass('reporting.kpi_quarterly')").fetchone()[0] is None:
            raise ReportError("reporting.kpi_quarterly does not exist: bootstrap the warehouse "
                              "(winback bootstrap) and publish a quarter first")
        missing = [view for view in bi_views()
                   if conn.execute("select to_regclass(%s)", (view,)).fetchone()[0] is None]
        if missing:
            # The nightly views come with the marts DAG, the quarterly ones with the quarterly DAG.
            builds = ("the winback_marts DAG (dbt build --select tag:reporting)"
                      if set(missing) & set(bi_views(nightly_only=True))
                      else "the winback_quarterly_kpis DAG (dbt build --select tag:quarterly)")
            raise BiViewsMissing(f"{', '.join(missing)} not found: the BI views are dbt models; run {builds} "
                                 "to build them")
        definition = kpi_definition.load()
        unpublished = kpi_definition.published_columns_missing(conn, definition)
        if unpublished:
            raise ReportError(f"the published tables lack KPI columns of the KPI definition ({', '.join(unpublished)}):"
                              " run winback bootstrap, then publish the quarter again")
        data = load(conn, quarter_start, definition)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{report_stem(quarter_start, data.version)}.html"
    html_path.write_text(render_html(data), encoding="utf-8")
    log.info("report for %s (version %s, as of %s): %s", quarter_start, data.version, data.as_of, html_path)
    if pdf:
        from winback.report.pdf import write_pdf

        write_pdf(html_path)
    return html_path
