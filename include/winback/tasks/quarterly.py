"""Task bodies of ``winback_quarterly_kpis``: which quarters, the gate, the publication.

Write-audit-publish: dbt writes the quarter's KPI rows to ``kpi_staging``; the quality
gate (``winback.quality``) audits them and the raw layer they rest on
(``common.validate_raw``); only then does ``winback.publish`` copy them, atomically and as
a new version, into ``reporting``. A failed gate fails the run with the failed
expectations named, fires the failure alert, and leaves ``reporting`` exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from winback import warehouse
from winback.calendar import last_closed_quarter, quarter_of
from winback.config import get_settings
from winback.tasks import common

log = logging.getLogger(__name__)

APPROVAL_TASK = "approve_publication"
NO_REVIEW_TASK = "no_review_needed"


def plan_quarters(as_of: dt.date, conf: dict[str, Any], dsn: str) -> list[dt.date]:
    """The quarters this run publishes.

    ``{"quarter": "2025-01-01"}`` → that quarter (it must be closed as of the run);
    ``{"backfill": true}`` → every closed quarter not yet published, oldest first;
    otherwise (the scheduled run) → the last closed quarter.
    """
    from winback.publish import closed_unpublished_quarters

    last = last_closed_quarter(as_of)
    if conf.get("quarter"):
        quarter = quarter_of(dt.date.fromisoformat(str(conf["quarter"])))
        if quarter > last:
            raise ValueError(f"quarter {quarter} is not closed as of {as_of} (last closed: {last})")
        return [quarter]
    if conf.get("backfill"):
        return closed_unpublished_quarters(dsn, as_of)
    return [last]


def plan(as_of: str) -> list[str]:
    settings = get_settings()
    quarters = plan_quarters(dt.date.fromisoformat(as_of), common.conf(), warehouse.warehouse_dsn(settings))
    log.info("quarters to validate and publish as of %s: %s", as_of, [q.isoformat() for q in quarters])
    return [q.isoformat() for q in quarters]


def measure_campaign_uplift() -> int:
    """Pool the campaign uplift cells the build left into ``reporting.campaign_uplift``
    (statistics in Python: ``winback.analytics.campaign_uplift``)."""
    from winback.analytics import campaign_uplift

    return campaign_uplift.refresh(warehouse.warehouse_dsn())


def validate_kpi(as_of: str, quarters: list[str]) -> dict[str, str]:
    """The kpi suite for every planned quarter; fails before anything is published."""
    from winback.quality import run_gates

    validations: dict[str, str] = {}
    failures = []
    # One gate run per quarter; the Data Docs are built once for all (a backfill has a dozen).
    results = run_gates(warehouse.warehouse_dsn(), "kpi", dt.date.fromisoformat(as_of),
                        [dt.date.fromisoformat(quarter) for quarter in quarters], common.context()["run_id"])
    for quarter, result in zip(quarters, results, strict=True):
        if result.success:
            validations[quarter] = result.validation_id
        else:
            failures.append(f"{quarter}: {result.message}")
    if failures:
        common.fail("KPI quality gate failed, nothing published: " + " | ".join(failures))
    return validations


def review_lines(dsn: str, as_of: dt.date, run_id: str, validations: dict[str, str]) -> list[str]:
    """What a person should see before these quarters are published: every warning and
    waiver of their kpi gate runs and of this run's raw gate run."""
    with warehouse.connect(dsn) as conn:
        rows = conn.execute(
            "select quarter_start, failed_warning, waived, observed from audit.validation_results"
            " where validation_id = any(%s) or (run_id = %s and suite = 'raw' and as_of = %s)"
            " order by suite desc, quarter_start", (list(validations.values()), run_id, as_of)).fetchall()
    lines = []
    for quarter, warnings, waived, observed in rows:
        scope = f"quarter {quarter}" if quarter else f"raw data as of {as_of}"
        for name in warnings:
            if name in waived:
                lines.append(f"- {scope}: **{name}** failed and was waived: {observed[name].get('waived')}")
            else:
                note = observed.get(name, {}).get("note") or "warning"
                lines.append(f"- {scope}: {name} ({note})")
    return lines


def review(as_of: str, validations: dict[str, str]) -> str:
    """Branch: publications whose gate runs have warnings or waivers wait for a person's
    approval (``publish_approval``); the others go straight on. The approval shows the list."""
    current = common.context()
    run = current["dag_run"]
    lines = review_lines(warehouse.warehouse_dsn(), dt.date.fromisoformat(as_of), current["run_id"], validations)
    current["ti"].xcom_push(key="review", value="\n".join(lines) or "no warnings, no waivers")
    mode = get_settings().publish_approval
    in_process = getattr(run, "triggering_user_name", None) == "dag_test"  # dag.test(): nobody to answer
    if not lines or mode == "off" or (mode == "auto" and in_process):
        log.info("publishing without review (%s warnings or waivers, approval %s)", len(lines), mode)
        return NO_REVIEW_TASK
    log.info("publication waits for approval: %s", "; ".join(lines))
    return APPROVAL_TASK


def publish(validations: dict[str, str]) -> dict[str, int]:
    """Publish every validated quarter (each atomically, as a new version)."""
    from winback.publish import publish_quarter

    reason = str(common.conf().get("reason") or "quarterly publication")
    versions = {}
    for quarter, validation_id in sorted(validations.items()):
        versions[quarter] = publish_quarter(warehouse.warehouse_dsn(), dt.date.fromisoformat(quarter),
                                            validation_id, reason)
        log.info("published quarter %s as version %s", quarter, versions[quarter])
    return versions


def report(versions: dict[str, int]) -> list[str]:
    """The review report of every quarter just published, from the published tables only:
    HTML for each, and the PDF of the latest one (the one the review prints). A first run
    over years of history publishes a dozen quarters at once; a PDF costs ~1.5 s of headless
    Chromium each, its HTML ~0.1 s. ``winback report --quarter Q`` writes any quarter's PDF."""
    from winback.report import render_report

    settings = get_settings()
    latest = max(versions, default=None)
    paths = [str(render_report(warehouse.warehouse_dsn(settings), dt.date.fromisoformat(quarter),
                               settings.output_dir / "reports", pdf=quarter == latest))
             for quarter in sorted(versions)]
    for path in paths:
        log.info("quarterly report: %s", path)
    return paths
