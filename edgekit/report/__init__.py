"""Reports over the results store: Markdown, self-contained HTML with plots, JSON/CSV, JUnit, and comparisons.

    from edgekit.store import ResultsStore
    from edgekit.report import Selection, build_report, write_report
    report = build_report(ResultsStore(), Selection(last_group=True))
    write_report(report, ["md", "html", "json", "csv", "junit"], Path("reports/latest"))

Modules: records (data model), collect (store -> Report, budgets), budgets, markdown, html (+ templates/), plots,
tabular (JSON/CSV, reading them back), junit, compare (bootstrap CI + tests), writer.
"""

from edgekit.report.collect import Selection, build_report, open_store
from edgekit.report.records import REPORT_SCHEMA, REPORT_SCHEMA_VERSION, Report, ReportRow
from edgekit.report.writer import FORMATS, parse_formats, write_report

__all__ = ["FORMATS", "REPORT_SCHEMA", "REPORT_SCHEMA_VERSION", "Report", "ReportRow", "Selection", "build_report",
           "open_store", "parse_formats", "write_report"]
