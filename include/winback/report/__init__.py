"""The quarterly KPI review report.

:func:`render_report` renders one published quarter as a self-contained HTML file (and a
PDF when WeasyPrint or Chromium is available), from the published reporting layer only:
the versioned KPI tables and the BI views in ``reporting`` (dbt models,
``dbt_project/models/reporting``, rebuilt by dbt with the marts they read).
"""

from winback.report.data import BiViewsMissing, ReportError, bi_views
from winback.report.pdf import write_pdf
from winback.report.render import render_report

__all__ = ["BiViewsMissing", "ReportError", "bi_views", "render_report", "write_pdf"]
