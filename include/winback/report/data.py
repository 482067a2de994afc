"""What the quarterly report shows, read from the published reporting layer only.

KPI figures come from the published, versioned ``reporting.kpi_quarterly`` /
``reporting.kpi_quarterly_breakdown`` and the publication log ``reporting.kpi_publications``
(never from ``kpi_staging``); the detail sections from the BI views in ``reporting`` over
the marts (dbt models, ``dbt_project/models/reporting``: :func:`bi_views`); the
data-quality status from the gate run that approved the publication
(``audit.validation_results``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from winback import kpi_definition
from winback.calendar import is_quarter_start, quarter_label, quarter_of, shift_quarters
from winback.config import get_settings
from winback.kpi_definition import KpiDefinition

TOP_LOST = 15
TOP_NOT_CONVERTED = 15
COHORTS_SHOWN = 6
TOP_AT_RISK = 15
BACKTEST_QUARTERS_SHOWN = 8
TOP_WORK_LIST = 15
TOP_DEVIATIONS = 10
TOP_PROMOTERS = 10
CAMPAIGNS_SHOWN = 5   # the best and the worst campaigns by net margin, each
MIN_SEGMENT_COMPARED = 5  # an offer type in a class is shown from this many clients compared
# A per-manager table shows at most this many managers (render.managers_shown); every
# manager is in the table's BI view. 1,800 managers (bench size L) made a 2.9 MB report
# that WeasyPrint took minutes and 4 GB to print.
MANAGERS_SHOWN = 25
ABC_XYZ_CLASSES = ("AX", "AY", "AZ", "BX", "BY", "BZ", "CX", "CY", "CZ", "N")
ABC_CLASSES = ("A", "B", "C", "N")


class ReportError(RuntimeError):
    """The report cannot be rendered; the one-line message says why and what to do."""


class BiViewsMissing(ReportError):
    """A BI view the report reads does not exist (dbt has not built it yet)."""


def bi_views(nightly_only: bool = False) -> tuple[str, ...]:
    """The BI views: one dbt model per SQL file of ``dbt_project/models/reporting`` (built
    with the marts every night) and of ``models/quarterly/reporting`` (built by the
    quarterly DAG; left out with ``nightly_only``), each a view of the same name in schema
    ``reporting``, e.g. ``reporting.lost_clients_top``."""
    models = get_settings().dbt_project_dir / "models"
    folders = [models / "reporting"] + ([] if nightly_only else [models / "quarterly" / "reporting"])
    return tuple(sorted(f"reporting.{path.stem}" for folder in folders for path in folder.glob("*.sql")))


def check_quarter(quarter_start: dt.date | str) -> dt.date:
    if isinstance(quarter_start, str):
        try:
            quarter_start = dt.date.fromisoformat(quarter_start)
        except ValueError:
            raise ReportError(f"not an ISO date (YYYY-MM-DD): {quarter_start!r}") from None
    if isinstance(quarter_start, dt.datetime):
        quarter_start = quarter_start.date()
    if not is_quarter_start(quarter_start):
        raise ReportError(f"{quarter_start} is not the first day of a calendar quarter "
                          f"(e.g. {quarter_of(quarter_start)})")
    return quarter_start


@dataclass
class ReportData:
    quarter_start: dt.date
    definition: KpiDefinition                      # the KPI columns shown (tiles, tables)
    kpi: dict[str, Any]
    history: list[dict[str, Any]]                  # published quarters <= the report's quarter
    previous: dict[str, Any] | None
    last_year: dict[str, Any] | None
    publication: dict[str, Any]
    versions: list[dict[str, Any]]
    gate: dict[str, Any] | None
    gate_note: str | None
    breakdown: dict[str, list[dict[str, Any]]]
    migration: list[dict[str, Any]]
    manager_moves: list[dict[str, Any]]
    cohorts: list[dict[str, Any]]
    lost_top: list[dict[str, Any]]
    lost_total: int
    winback_by_manager: list[dict[str, Any]]
    winback_by_channel: list[dict[str, Any]]
    not_converted: list[dict[str, Any]]
    not_converted_summary: dict[str, Any]
    details_as_of: dt.date | None
    at_risk_top: list[dict[str, Any]] = field(default_factory=list)      # the early-warning list now (as of D)
    at_risk_summary: dict[str, Any] = field(default_factory=dict)
    backtest: list[dict[str, Any]] = field(default_factory=list)         # judged quarters <= the report's
    nps: list[dict[str, Any]] = field(default_factory=list)              # the quarter's NPS, company first
    work_list_top: list[dict[str, Any]] = field(default_factory=list)    # the win-back work list now (as of D)
    work_list_total: int = 0
    reason_recording: list[dict[str, Any]] = field(default_factory=list)  # the quarter's losses per manager
    contact_coverage: list[dict[str, Any]] = field(default_factory=list)  # A/B clients per manager now
    deviations_top: list[dict[str, Any]] = field(default_factory=list)   # the quarter's biggest falls
    deviations_summary: dict[str, Any] = field(default_factory=dict)
    promoters_top: list[dict[str, Any]] = field(default_factory=list)    # promoters by LTV now
    # What worked (campaigns as of D): uplift per offer type and per offer type x segment, the
    # campaigns with their net margin and uplift, the totals.
    uplift_by_offer: list[dict[str, Any]] = field(default_factory=list)
    uplift_by_offer_segment: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    campaign_summary: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def as_of(self) -> dt.date:
        return self.kpi["as_of_date"]

    @property
    def version(self) -> int:
        return self.kpi["version"]


def _all(conn: psycopg.Connection, query: str | sql.Composable, params: tuple = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query, params).fetchall()


def _one(conn: psycopg.Connection, query: str | sql.Composable, params: tuple = ()) -> dict[str, Any] | None:
    rows = _all(conn, query, params)
    return rows[0] if rows else None


def _gate(conn: psycopg.Connection, validation_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """The gate run that approved the publication; a note instead when it cannot be read
    (e.g. the report is rendered by a role without access to the audit schema)."""
    try:
        with conn.transaction():
            row = _one(conn, "select validation_id, run_id, suite, as_of, quarter_start, success, failed_blocking, "
                             "failed_warning, evaluated, data_docs_path, created_at, "
                             # The waivers behind this publication: of its kpi run, and of the raw run
                             # of the same pipeline run for the same as-of date.
                             "(select coalesce(jsonb_agg(jsonb_build_object('check', w.name, 'suite', r.suite, "
                             "'waiver', r.observed -> w.name ->> 'waived') order by r.suite, w.name), '[]') "
                             "from audit.validation_results as r, unnest(r.waived) as w (name) "
                             "where r.validation_id = v.validation_id or (r.run_id = v.run_id and r.suite = 'raw' "
                             "and r.as_of = v.as_of)) as waivers "
                             "from audit.validation_results as v where validation_id = %s", (validation_id,))
    except psycopg.errors.InsufficientPrivilege:
        return None, "the gate run's details are in audit.validation_results, which this login cannot read"
    if row is None:
        return None, f"gate run {validation_id} not found in audit.validation_results"
    return row, None


def load(conn: psycopg.Connection, quarter_start: dt.date, definition: KpiDefinition | None = None) -> ReportData:
    definition = definition or kpi_definition.load()
    kpi_columns = sql.SQL(", ").join(map(sql.Identifier, definition.names))
    kpi = _one(conn, sql.SQL("select quarter_start, {}, as_of_date, version, published_at, reason "
                             "from reporting.kpi_quarterly where quarter_start = %s").format(kpi_columns),
               (quarter_start,))
    if kpi is None:
        published = [r["quarter_start"] for r in _all(
            conn, "select distinct quarter_start from reporting.kpi_publications order by 1")]
        listed = ", ".join(q.isoformat() for q in published[-8:]) or "none yet"
        if len(published) > 8:
            listed = f"{len(published)} quarters, latest {listed.split(', ')[-1]}"
        raise ReportError(f"quarter {quarter_start} ({quarter_label(quarter_start)}) is not published "
                          f"(published quarters: {listed})")
    history = _all(conn, sql.SQL("select quarter_start, {}, as_of_date, version from reporting.kpi_quarterly "
                                 "where quarter_start <= %s order by quarter_start").format(kpi_columns),
                   (quarter_start,))
    by_quarter = {row["quarter_start"]: row for row in history}
    publication = _one(conn, "select quarter_start, version, published_at, validation_id, reason, kpi_rows, "
                             "breakdown_rows from reporting.kpi_publications "
                             "where quarter_start = %s and version = %s", (quarter_start, kpi["version"]))
    versions = _all(conn, "select version, published_at, validation_id, reason from reporting.kpi_publications "
                          "where quarter_start = %s order by version", (quarter_start,))
    gate, gate_note = _gate(conn, publication["validation_id"])

    breakdown: dict[str, list[dict[str, Any]]] = {}
    for row in _all(conn, sql.SQL("select dimension, dimension_value, {} from reporting.kpi_quarterly_breakdown "
                                  "where quarter_start = %s order by dimension, dimension_value = 'unknown', "
                                  "dimension_value").format(kpi_columns), (quarter_start,)):
        breakdown.setdefault(row["dimension"], []).append(row)

    migration = _all(conn, "select segmentation, from_segment, to_segment, clients, revenue_last_4_quarters, "
                           "data_as_of_date from reporting.segment_migration where quarter_start = %s "
                           "order by segmentation, from_segment, to_segment", (quarter_start,))
    manager_moves = _all(conn, "select manager_id, clients, clients_moved_up, clients_moved_down, clients_unchanged "
                               "from reporting.manager_segment_moves where quarter_start = %s "
                               "and segmentation = 'abc_xyz' order by manager_id = 'unknown', manager_id",
                         (quarter_start,))
    cohorts = _all(conn, "select * from (select cohort_quarter, lost_clients, returned_within_90_days, "
                         "returned_within_180_days, returned_within_365_days, return_rate_90_days, "
                         "return_rate_180_days, return_rate_365_days, is_final_90_days, is_final_180_days, "
                         "is_final_365_days, data_as_of_date from reporting.cohort_return_rates "
                         "where dimension = 'overall' and cohort_quarter <= %s "
                         "order by cohort_quarter desc limit %s) as recent order by cohort_quarter",
                   (quarter_start, COHORTS_SHOWN))
    lost_top = _all(conn, "select revenue_rank, client_id, episode_number, last_purchase_date, lost_date, "
                          "revenue_12m_before_loss, gross_margin_12m_before_loss, loss_reason, manager_id, region, "
                          "potential_revenue, potential_source, contacted_within_30_days, has_returned, return_date, "
                          "winback_rank, data_as_of_date from reporting.lost_clients_top "
                          "where quarter_start = %s and revenue_rank <= %s order by revenue_rank",
                    (quarter_start, TOP_LOST))
    lost_total = _one(conn, "select count(*) as n from reporting.lost_clients_top where quarter_start = %s",
                      (quarter_start,))["n"]
    winback_by_manager = _all(conn, "select credited_manager_id, clients_won_back, revenue_first_90_days, "
                                    "median_days_from_contact_to_return from reporting.winback_by_manager "
                                    "where quarter_start = %s order by credited_manager_id = 'not attributed', "
                                    "clients_won_back desc, credited_manager_id", (quarter_start,))
    winback_by_channel = _all(conn, "select credited_channel, clients_won_back, revenue_first_90_days, "
                                    "median_days_from_contact_to_return from reporting.winback_by_channel "
                                    "where quarter_start = %s order by credited_channel = 'not attributed', "
                                    "clients_won_back desc, credited_channel", (quarter_start,))
    not_converted = _all(conn, "select client_id, contacts_not_converted, contacts_judged, first_contact_date, "
                               "last_contact_date, last_contact_manager_id, last_contact_channel, "
                               "last_contact_outcome, managers_involved from reporting.contacts_not_converted "
                               "where quarter_start = %s order by contacts_not_converted desc, "
                               "last_contact_date desc, client_id limit %s", (quarter_start, TOP_NOT_CONVERTED))
    not_converted_summary = _one(conn, "select count(*) as clients, coalesce(sum(contacts_not_converted), 0) "
                                       "as contacts_not_converted, coalesce(sum(contacts_judged), 0) "
                                       "as contacts_judged from reporting.contacts_not_converted "
                                       "where quarter_start = %s", (quarter_start,))
    details_as_of = _one(conn, "select max(data_as_of_date) as d from reporting.segment_migration")["d"]
    at_risk_top = _all(conn, "select risk_rank, client_id, manager_id, segment, is_overdue, is_declining, "
                             "last_purchase_date, days_since_last_purchase, usual_days_between_purchases, "
                             "revenue_last_12_months, revenue_at_risk, days_since_last_contact, data_as_of_date "
                             "from reporting.clients_at_risk where is_at_risk order by risk_rank limit %s",
                       (TOP_AT_RISK,))
    at_risk_summary = _one(conn, "select count(*) filter (where is_at_risk) as at_risk, count(*) as active, "
                                 "coalesce(sum(revenue_at_risk) filter (where is_at_risk), 0) as revenue_at_risk, "
                                 "max(data_as_of_date) as as_of from reporting.clients_at_risk")
    backtest = _all(conn, "select * from (select quarter_label, quarter_start, flagged_as_of, horizon_end, "
                          "active_clients, flagged_clients, lost_clients, flagged_lost_clients, flag_precision, "
                          "flag_recall, loss_rate, flagged_revenue_share from reporting.early_warning_backtest "
                          "where quarter_start <= %s order by quarter_start desc limit %s) as recent "
                          "order by quarter_start", (quarter_start, BACKTEST_QUARTERS_SHOWN))
    nps = _all(conn, "select dimension, dimension_value, responses, promoters, passives, detractors, nps "
                     "from reporting.nps_by_quarter where quarter_start = %s "
                     "order by dimension = 'manager', dimension_value = 'unknown', dimension_value", (quarter_start,))
    work_list_top = _all(conn, "select winback_rank, client_id, manager_id, segment_before_loss, lost_date, "
                               "revenue_12m_before_loss, gross_margin_12m_before_loss, potential_margin, loss_reason, "
                               "loyalty_index, winback_priority, contacted_since_lost, data_as_of_date "
                               "from reporting.winback_work_list order by winback_rank limit %s", (TOP_WORK_LIST,))
    work_list_total = _one(conn, "select count(*) as n from reporting.winback_work_list")["n"]
    reason_recording = _all(conn, "select manager_id, lost_clients, reason_recorded, recording_rate "
                                  "from reporting.loss_reason_recording where quarter_start = %s "
                                  "order by recording_rate, manager_id", (quarter_start,))
    contact_coverage = _all(conn, "select manager_id, key_clients, key_clients_contacted, contact_coverage "
                                  "from reporting.contact_coverage_by_manager order by contact_coverage, manager_id")
    deviations_top = _all(conn, "select client_id, manager_id, region, industry, net_revenue, "
                                "same_quarter_last_year_revenue, deviation_vs_last_year, deviation_vs_last_year_pct, "
                                "deviation_vs_previous_quarter from reporting.revenue_deviations "
                                "where quarter_start = %s and deviation_vs_last_year < 0 "
                                "order by deviation_vs_last_year, client_id limit %s", (quarter_start, TOP_DEVIATIONS))
    deviations_summary = _one(conn, "select count(*) filter (where deviation_vs_last_year < 0) as falling, "
                                    "count(*) as clients, coalesce(sum(net_revenue), 0) as revenue, "
                                    "coalesce(min(quarter_revenue_at_risk_vs_last_year), 0) as at_risk_vs_last_year, "
                                    "coalesce(min(quarter_revenue_at_risk_vs_previous_quarter), 0) "
                                    "as at_risk_vs_previous_quarter from reporting.revenue_deviations "
                                    "where quarter_start = %s", (quarter_start,))
    promoters_top = _all(conn, "select promoter_rank, client_id, manager_id, latest_nps_score, lifetime_revenue, "
                               "lifetime_gross_margin, loyalty_index, is_lost from reporting.promoters "
                               "order by promoter_rank limit %s", (TOP_PROMOTERS,))
    uplift_by_offer, uplift_by_offer_segment, campaigns, campaign_summary = _campaigns(conn)

    return ReportData(
        quarter_start=quarter_start, definition=definition, kpi=kpi, history=history,
        previous=by_quarter.get(shift_quarters(quarter_start, -1)),
        last_year=by_quarter.get(shift_quarters(quarter_start, -4)),
        publication=publication, versions=versions, gate=gate, gate_note=gate_note, breakdown=breakdown,
        migration=migration, manager_moves=manager_moves, cohorts=cohorts, lost_top=lost_top,
        lost_total=lost_total, winback_by_manager=winback_by_manager, winback_by_channel=winback_by_channel,
        not_converted=not_converted, not_converted_summary=not_converted_summary, details_as_of=details_as_of,
        at_risk_top=at_risk_top, at_risk_summary=at_risk_summary, backtest=backtest, nps=nps,
        work_list_top=work_list_top, work_list_total=work_list_total, reason_recording=reason_recording,
        contact_coverage=contact_coverage, deviations_top=deviations_top, deviations_summary=deviations_summary,
        promoters_top=promoters_top, uplift_by_offer=uplift_by_offer,
        uplift_by_offer_segment=uplift_by_offer_segment, campaigns=campaigns, campaign_summary=campaign_summary)


def _campaigns(conn: psycopg.Connection) -> tuple[list, list, list, dict]:
    """The "what worked" page: reporting.campaign_results (a dbt view) and
    reporting.campaign_uplift (written after the build by winback.analytics.campaign_uplift;
    missing until the quarterly DAG has run it once)."""
    uplift_exists = _one(conn, "select to_regclass('reporting.campaign_uplift') is not null as ok")["ok"]
    uplift = _all(conn, "select * from reporting.campaign_uplift order by grouping, uplift desc, offer_type, "
                        "abc_class, campaign_id") if uplift_exists else []
    by_campaign = {row["campaign_id"]: row for row in uplift if row["grouping"] == "campaign"}
    offer_margin = {row["offer_type"]: row for row in _all(
        conn, "select offer_type, sum(gross_margin_recovered) as gross_margin_recovered, "
              "sum(offer_cost) as offer_cost, sum(campaign_cost) as campaign_cost, sum(net_margin) as net_margin "
              "from reporting.campaign_results group by offer_type")}
    by_offer = [{**row, **{k: v for k, v in offer_margin.get(row["offer_type"], {}).items() if k != "offer_type"}}
                for row in uplift if row["grouping"] == "offer_type"]
    campaigns = _all(conn, "select campaign_id, max(campaign_name) as campaign_name, min(start_date) as start_date, "
                           "sum(clients_targeted) as clients_targeted, sum(clients_returned) as returned, "
                           "sum(gross_margin_recovered) as gross_margin_recovered, sum(offer_cost) as offer_cost, "
                           "sum(campaign_cost) as campaign_cost, sum(net_margin) as net_margin "
                           "from reporting.campaign_results group by campaign_id "
                           "order by sum(net_margin) desc, campaign_id")
    for row in campaigns:
        found = by_campaign.get(row["campaign_id"], {})
        row.update(uplift=found.get("uplift"), uplift_ci_low=found.get("uplift_ci_low"),
                   uplift_ci_high=found.get("uplift_ci_high"))
    if len(campaigns) > 2 * CAMPAIGNS_SHOWN:
        campaigns = campaigns[:CAMPAIGNS_SHOWN] + campaigns[-CAMPAIGNS_SHOWN:]
    summary = _one(conn, "select count(distinct campaign_id) as campaigns, coalesce(sum(clients_targeted), 0) "
                         "as targeted, coalesce(sum(clients_returned), 0) as returned, "
                         "coalesce(sum(net_margin), 0) as net_margin, max(data_as_of_date) as as_of "
                         "from reporting.campaign_results")
    by_segment = [row for row in uplift
                  if row["grouping"] == "offer_type_segment" and row["targeted_episodes"] >= MIN_SEGMENT_COMPARED]
    return by_offer, by_segment, campaigns, summary
