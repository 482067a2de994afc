"""Waive a failed blocking quality check for one as-of date or one quarter, from the UI.

Trigger this DAG with its form: the check, its scope (an as-of date for raw checks, a
quarter's first day for kpi checks), a reason, and how many days the waiver holds. It is
stored in ``audit.waivers`` in the triggering user's name; the next gate run in that scope
records the check as a waived warning (see ``include/winback/quality/README.md``). The same
as ``winback waive CHECK --as-of D --reason TEXT``.
"""

from airflow.sdk import Param, dag, task

from winback.config import get_settings
from winback.dag_policy import dag_defaults
from winback.quality import waivers
from winback.tasks import waive

settings = get_settings()


@dag(
    dag_id="winback_waive",
    schedule=None,
    tags=["winback", "quality", "waiver"],
    doc_md=__doc__,
    params={
        "check": Param(type="string", enum=sorted(waivers.blocking_checks()), title="Blocking check to waive"),
        "as_of": Param(None, type=["null", "string"], format="date", title="As-of date (raw checks)"),
        "quarter": Param(None, type=["null", "string"], format="date", title="Quarter's first day (kpi checks)"),
        "reason": Param(type="string", minLength=3, title="Why the failure is accepted"),
        "valid_days": Param(waivers.DEFAULT_VALID_DAYS, type="integer", minimum=1, maximum=366,
                            title="Days the waiver holds"),
    },
    **dag_defaults(settings),
)
def winback_waive():
    task(task_id="record_waiver")(waive.record_waiver)()


winback_waive()
