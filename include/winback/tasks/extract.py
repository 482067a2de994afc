"""Task bodies of ``winback_nightly_extract``: bootstrap the warehouse, extract each entity
for the run's as-of date, then the raw gate (``common.validate_raw``)."""

from __future__ import annotations

from typing import Any

from winback.config import get_settings
from winback.tasks import common

# Extract order: reference entities first, so a sales line's client and a contact's
# campaign are known when they land.
EXTRACT_ORDER = ("managers", "clients", "sales_lines", "campaigns", "contacts")


def prepare_warehouse() -> None:
    from winback import warehouse

    warehouse.bootstrap(warehouse.warehouse_dsn())


def extract(entity: str) -> dict[str, Any]:
    """Extract one entity; contract failures fail the task without retries (retrying
    cannot fix the data), infrastructure failures are retried with backoff."""
    from winback.extract import DeliveryRejected, QuarantineLimitExceeded, SourceError, extract_entity

    settings = get_settings()
    as_of = common.as_of_from_context(settings)
    try:
        result = extract_entity(entity, as_of=as_of, settings=settings, dag_run_id=common.context()["run_id"])
    except (DeliveryRejected, QuarantineLimitExceeded, SourceError) as exc:
        common.fail(str(exc))
    return result.summary()


def nightly_as_of() -> str:
    """The as-of date this nightly run describes (for the raw quality gate)."""
    return common.as_of_from_context(get_settings()).isoformat()
