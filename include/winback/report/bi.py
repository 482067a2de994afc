"""The BI access layer: business-readable views in ``reporting`` over the dbt marts.

The views (``sql/bi_views.sql``) cannot be created by :func:`winback.warehouse.bootstrap`:
the marts they read do not exist until dbt has built them, and every dbt rebuild of a
mart drops them again (dbt swaps the table in and drops the old one with CASCADE). So
:func:`ensure_bi_views` runs after each dbt build; it is idempotent (``create or replace
view``), serialised by an advisory lock, and grants the views to ``winback_bi_reader``.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

from winback import warehouse

log = logging.getLogger(__name__)

# The views ensure_bi_views creates, and the marts they read.
BI_VIEWS = (
    "reporting.segment_migration",
    "reporting.manager_segment_moves",
    "reporting.cohort_return_rates",
    "reporting.lost_clients_top",
    "reporting.winback_attribution",
    "reporting.winback_by_manager",
    "reporting.winback_by_channel",
    "reporting.contacts_not_converted",
)
MARTS_READ = (
    "marts.fct_segment_migrations",
    "marts.fct_manager_segment_migrations",
    "marts.fct_cohort_return_rates",
    "marts.fct_lost_episodes",
    "marts.lost_clients",
    "marts.dim_clients",
    "marts.fct_winback_attribution",
    "marts.fct_contacts_not_converted",
)
_LOCK_KEY = "winback.bi_views"


class BiViewsError(RuntimeError):
    """The BI views cannot be created; the one-line message says what to do."""


def _missing(conn: psycopg.Connection, relations: tuple[str, ...]) -> list[str]:
    return [name for name in relations
            if conn.execute("select to_regclass(%s)", (name,)).fetchone()[0] is None]


def missing_bi_views(conn: psycopg.Connection) -> list[str]:
    """The BI views that do not exist (e.g. dropped by a dbt rebuild of their marts)."""
    return _missing(conn, BI_VIEWS)


def ensure_bi_views(dsn: str | None = None) -> tuple[str, ...]:
    """Create or replace the reporting views over the marts and grant them to BI.

    Run after dbt built the marts. Raises :class:`BiViewsError` when a mart is missing
    (or the SQL fails); returns the names of the views.
    """
    script = resources.files("winback").joinpath("sql", "bi_views.sql").read_text()
    with warehouse.connect(dsn) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
        missing = _missing(conn, MARTS_READ)
        if missing:
            raise BiViewsError(f"{', '.join(missing)} not found: build the dbt project (dbt build) "
                               "before creating the BI views")
        try:
            conn.execute(script)
        except psycopg.Error as exc:
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise BiViewsError(f"creating the BI views failed: {first}") from None
    log.info("BI views ready: %s", ", ".join(BI_VIEWS))
    return BI_VIEWS
