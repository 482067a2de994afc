"""Data-quality gate (Great Expectations Core) of the winback warehouse.

Two suites, defined once as JSON in ``winback/quality/suites/`` (see README.md next to
this file for every check, its severity and its threshold):

- ``raw``: after each nightly load, for its as-of date D — contract rules the extract does
  not enforce row by row, freshness, daily volume, unknown clients, mass cancellations.
- ``kpi``: before a quarter is published — the unpublished rows in ``kpi_staging`` (one row
  per quarter / per dimension value, rates in [0, 1], returns within the lost pool,
  breakdowns adding up to the totals, closed quarters only) and the revenue they rest on
  (marts and intermediate revenue reconciled with the raw sales lines).

Each check is ``blocking`` (its failure fails the gate; the quarter is not published) or
``warning`` (recorded and reported only).

Use::

    from winback.quality import run_gate
    result = run_gate(dsn, "kpi", as_of=date(2025, 4, 5), quarter_start=date(2025, 1, 1), run_id=run_id)
    result.raise_for_failure()        # GateFailed with a one-line message naming the failed checks
    publish_quarter(dsn, date(2025, 1, 1), result.validation_id, "quarterly publication")

``run_gates(dsn, "kpi", as_of, quarters, run_id)`` validates several quarters (a backfill)
the same way, one result each (two quarters at a time from six on), and renders the Data
Docs once for all of them.

Every run is stored in ``audit.validation_results`` and rendered into the Data Docs site
``<output_dir>/data_docs/index.html``. Great Expectations is imported only when a gate
runs, so importing this package (e.g. from a DAG file) stays cheap.
"""

from __future__ import annotations

from winback.quality.gate import GateError, GateFailed, GateResult, run_gate, run_gates
from winback.quality.suites import SUITE_NAMES, load_suite

__all__ = ["SUITE_NAMES", "GateError", "GateFailed", "GateResult", "load_suite", "run_gate", "run_gates"]
