"""The report's Jinja template is compiled once per process, not once per quarter rendered."""

from __future__ import annotations

from winback.report import render


def test_every_report_of_a_process_renders_from_one_compiled_template():
    template = render._environment().get_template("report.html.j2")
    assert render._environment().get_template("report.html.j2") is template
