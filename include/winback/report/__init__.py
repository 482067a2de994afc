"""The quarterly KPI review report and the BI access layer.

- :func:`render_report` renders one published quarter as a self-contained HTML file
  (and a PDF when WeasyPrint or Chromium is available), from the published reporting
  layer only;
- :func:`ensure_bi_views` creates the business-readable ``reporting`` views over the
  marts (run after every dbt build) and grants them to ``winback_bi_reader``.
"""

from winback.report.bi import BiViewsError, ensure_bi_views
from winback.report.data import ReportError
from winback.report.pdf import write_pdf
from winback.report.render import render_report

__all__ = ["BiViewsError", "ReportError", "ensure_bi_views", "render_report", "write_pdf"]
