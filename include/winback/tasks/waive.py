"""Task body of ``winback_waive``: record the waiver its trigger form asks for."""

from __future__ import annotations

import datetime as dt

from winback.tasks import common


def record_waiver() -> dict:
    """Record the waiver of the run's form (``params``) in the name of the Airflow user who
    triggered the run (see ``winback.quality.waivers``)."""
    from winback import warehouse
    from winback.quality import waivers

    current = common.context()
    params = current["params"]
    user = getattr(current["dag_run"], "triggering_user_name", None) or "airflow"

    def day(value: str | None) -> dt.date | None:
        return dt.date.fromisoformat(value) if value else None

    with warehouse.connect() as conn:
        waiver = waivers.give(conn, params["check"], params["reason"], as_of=day(params.get("as_of")),
                              quarter_start=day(params.get("quarter")), waived_by=f"airflow:{user}",
                              valid_days=int(params.get("valid_days") or waivers.DEFAULT_VALID_DAYS))
    return {"waiver_id": waiver.waiver_id, "waiver": waiver.describe()}
