"""A KPI is defined once (issue 16): dbt_project/models/kpi/_kpi__models.yml.

The consistency tests fail when a place that uses the KPI columns disagrees with that
definition (the model SQL, the contracts, publish, the published tables' DDL, the gate's
per-column checks, the report). The last test is the worked example: adding a KPI column
to a copy of the dbt project touches two files (the aggregation and the yml; its unit
test case would be the third), and publish, the published tables, the gate and the report
pick it up from the parsed manifest.
"""

from __future__ import annotations

import ast
import copy
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from winback import dbt, kpi_definition, publish
from winback.config import get_settings
from winback.kpi_definition import KpiDefinition, KpiDefinitionError, from_manifest
from winback.quality import suites
from winback.report import render

PROJECT = get_settings().dbt_project_dir
KPI_DIR = PROJECT / "models" / "kpi"
PACKAGE = Path(kpi_definition.__file__).resolve().parent
AS_OF, QUARTER = dt.date(2025, 4, 4), dt.date(2025, 1, 1)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(Path(dbt.ensure_manifest()).read_text())


@pytest.fixture(scope="module")
def definition(manifest) -> KpiDefinition:
    return from_manifest(manifest)


def _node(manifest: dict, name: str) -> dict:
    return next(n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["name"] == name)


def _select_list(sql_text: str) -> list[str]:
    """Output names of the last top-level select (``x``, ``t.x`` or ``... as x``)."""
    body = sql_text[sql_text.rindex("\nselect") + len("\nselect"):]
    body = re.split(r"\nfrom\b", body)[0]
    names, depth, item = [], 0, ""
    for char in body + ",":
        depth += char in "(" or -(char in ")")
        if char == "," and depth == 0:
            item = item.strip()
            if item:
                names.append(re.split(r"[\s.]", item)[-1])
            item = ""
        else:
            item += char
    return names


# ----------------------------------------------------------------------------- the definition
def test_the_definition_reads_and_is_complete(definition):
    assert definition.names[:3] == ("active_clients_start", "new_clients", "lost_clients")
    for column in definition.columns:
        assert column.label and column.format in kpi_definition.FORMATS and column.comment, column.name
        assert column.description, column.name
    assert [c.name for c in definition.placed("tile")] and [c.name for c in definition.placed("secondary")]


def test_contracts_are_enforced_and_agree(manifest, definition):
    for model, keys in ((kpi_definition.COMPANY_MODEL, kpi_definition.COMPANY_KEYS),
                        (kpi_definition.BREAKDOWN_MODEL, kpi_definition.BREAKDOWN_KEYS)):
        node = _node(manifest, model)
        assert node["config"]["contract"]["enforced"] is True, model
        assert [n for n, _ in definition.contracts[model]] == [*keys, *definition.names, "as_of_date"], model
        for name, data_type in definition.typed:
            assert node["columns"][name]["data_type"].lower() == data_type, (model, name)


@pytest.mark.parametrize("breakage", ["column_without_meta", "meta_on_breakdown", "breakdown_type_differs",
                                      "breakdown_lacks_column", "unknown_format", "contract_off"])
def test_a_disagreement_is_refused(manifest, breakage):
    broken = copy.deepcopy(manifest)
    company = _node(broken, "kpi_quarterly")
    breakdown = _node(broken, "kpi_quarterly_breakdown")
    if breakage == "column_without_meta":
        # a column in the model's contract that is not defined as a KPI
        company["columns"]["mystery"] = {"name": "mystery", "data_type": "bigint", "meta": {}, "config": {}}
    elif breakage == "meta_on_breakdown":
        breakdown["columns"]["lost_clients"]["config"] = {"meta": {"kpi": {"label": "x"}}}
    elif breakage == "breakdown_type_differs":
        breakdown["columns"]["lost_clients"]["data_type"] = "integer"
    elif breakage == "breakdown_lacks_column":
        del breakdown["columns"]["winback_rate"]
    elif breakage == "unknown_format":
        company["columns"]["churn_rate"]["config"]["meta"]["kpi"]["format"] = "percent"
    elif breakage == "contract_off":
        breakdown["config"]["contract"]["enforced"] = False
    with pytest.raises(KpiDefinitionError):
        from_manifest(broken)


# ----------------------------------------------------------------------------- the model SQL
def check_model_sql(kpi_dir: Path, definition: KpiDefinition) -> None:
    company = (kpi_dir / "kpi_quarterly.sql").read_text()
    assert _select_list(company) == [n for n, _ in definition.contracts["kpi_quarterly"]]
    # kpi_quarterly_breakdown selects int_kpi_quarterly's columns (kpis.*): the keys and the KPIs
    intermediate = (kpi_dir / "intermediate" / "int_kpi_quarterly.sql").read_text()
    assert sorted(_select_list(intermediate)) == sorted([*kpi_definition.BREAKDOWN_KEYS, *definition.names])
    assert "kpis.*" in (kpi_dir / "kpi_quarterly_breakdown.sql").read_text()


def test_model_sql_outputs_exactly_the_contract(definition):
    check_model_sql(KPI_DIR, definition)


# ----------------------------------------------------------------------------- publish
def test_publish_copies_every_defined_column(definition):
    assert not hasattr(publish, "KPI_COLUMNS")
    statement = publish._copy_statement(definition, kpi_definition.STAGED_KPI, kpi_definition.PUBLISHED_KPI,
                                        kpi_definition.COMPANY_KEYS).as_string(None)
    for name, data_type in definition.typed:
        assert f'"{name}"::{data_type}' in statement


def test_the_published_tables_are_not_typed_again():
    text = (PACKAGE / "sql" / "reporting.sql").read_text()
    definition = kpi_definition.load()
    assert not [name for name in definition.names if re.search(rf"\b{name}\b", text)]


# ----------------------------------------------------------------------------- the gate
def test_the_gate_checks_every_column_bound(definition):
    checks = {c.name: c for c in suites.load_suite("kpi", AS_OF, QUARTER, kpis=definition).checks}
    for column in definition.columns:
        for asset in ("kpi_quarterly", "kpi_quarterly_breakdown"):
            if "between" in column.gate:
                low, high = column.gate["between"]
                check = checks[f"{asset}.{column.name}_within_{low}_{high}"]
                assert check.kwargs == {"column": column.name, "min_value": low, "max_value": high}
            if column.gate.get("min") == 0:
                assert checks[f"{asset}.{column.name}_not_negative"].kwargs["min_value"] == 0
        if column.gate.get("required"):
            assert checks[f"kpi_quarterly.{column.name}_present"].type == "expect_column_values_to_not_be_null"
    assert all(c.blocking for c in checks.values() if "kpi_column" in c.meta)


def test_the_suite_file_types_no_per_column_kpi_check(definition):
    suite = json.loads((PACKAGE / "quality" / "suites" / "kpi.json").read_text())
    typed = [e["meta"]["name"] for a in suite["assets"] if a["name"].startswith("kpi_quarterly")
             for e in a["expectations"] if e["kwargs"].get("column") in definition.names]
    assert typed == []


# ----------------------------------------------------------------------------- the report
def test_the_report_shows_what_is_defined(definition):
    assert [k.key for k in render.tiles(definition)] == [c.name for c in definition.placed("tile")]
    assert [k.key for k in render.secondary(definition)] == [c.name for c in definition.placed("secondary")]
    assert set(render.NAMED_KPIS) <= set(definition.names)
    render.check_definition(definition)


# Keys render.py reads from rows that are not KPI rows (cohorts, segments, the gate run),
# or that are the KPI rows' keys, and its Jinja filters / globals.
OTHER_ROW_KEYS = {"quarter_start", "cohort_quarter", "clients", "dimension", "responses", "from_segment", "to_segment", "segmentation",
                  "success", "waivers", "failed_warning", "created_at", "published_at", "fmt", "raw", "utc", "qlabel",
                  *(f"{kind}_{n}_days" for kind in ("return_rate", "is_final") for n in (90, 180, 365))}


def test_the_report_code_names_no_other_kpi_column():
    """Every KPI column render.py reads by name is in NAMED_KPIS (which the report checks
    against the definition); the tiles and the KPI tables come from the definition."""
    tree = ast.parse(Path(render.__file__).read_text())
    keys = {node.slice.value for node in ast.walk(tree)
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)}
    assert keys - OTHER_ROW_KEYS <= set(render.NAMED_KPIS)
    template = (Path(render.__file__).parent / "templates" / "report.html.j2").read_text()
    assert "{% for column in trend_columns %}" in template and "{% for column in breakdown_columns %}" in template


def test_the_report_refuses_a_definition_without_a_named_column(definition):
    shrunk = KpiDefinition(columns=tuple(c for c in definition.columns if c.name != "winback_rate"))
    with pytest.raises(render.ReportError, match="winback_rate"):
        render.check_definition(shrunk)


# ----------------------------------------------------------------------------- adding a KPI
NEW_KPI = "revenue_lost_per_client"
NEW_KPI_YML = """      - name: revenue_lost_per_client
        data_type: numeric
        description: revenue_lost_ttm / lost_clients (null without lost clients).
        config:
          meta:
            kpi:
              label: Revenue lost per lost client
              short_label: revenue lost per client
              format: money
              higher_is_better: false
              help: revenue lost ÷ lost clients
              comment: Average net revenue a newly lost client brought in the 12 months before it became lost.
              report: secondary
              breakdown_column: 9
              gate: {min: 0}
"""


def _add_kpi(project: Path) -> None:
    """The whole change of the example: three files of models/kpi."""
    intermediate = project / "models" / "kpi" / "intermediate" / "int_kpi_quarterly.sql"
    text = intermediate.read_text()
    last = "    end as lost_contacted_share\nfrom applicable"
    assert last in text
    intermediate.write_text(text.replace(last, "    end as lost_contacted_share,\n"
                                               "    revenue_lost_ttm / nullif(lost_clients, 0) as revenue_lost_per_client"
                                               "\nfrom applicable"))
    company = project / "models" / "kpi" / "kpi_quarterly.sql"
    text = company.read_text()
    assert text.count("    {{ as_of_date() }} as as_of_date") == 1
    company.write_text(text.replace("    {{ as_of_date() }} as as_of_date",
                                    f"    kpis.{NEW_KPI},\n    {{{{ as_of_date() }}}} as as_of_date"))
    yml = project / "models" / "kpi" / "_kpi__models.yml"
    text = yml.read_text()
    as_of = "      - name: as_of_date\n"
    assert text.count(as_of) == 2
    breakdown_entry = f"      - name: {NEW_KPI}\n        data_type: numeric\n        description: As in kpi_quarterly.\n"
    first, second = text.split(as_of, 1)[0], text.split(as_of, 1)[1]
    yml.write_text(first + NEW_KPI_YML + as_of + second.replace(as_of, breakdown_entry + as_of))


def _changed_files(before: Path, after: Path) -> list[str]:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and not {"target", "logs"} & set(p.relative_to(root).parts)}
    old, new = files(before), files(after)
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def test_adding_a_kpi_column_touches_three_files_and_everything_picks_it_up(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    _add_kpi(project)
    assert _changed_files(PROJECT, project) == ["models/kpi/_kpi__models.yml", "models/kpi/intermediate/int_kpi_quarterly.sql",
                                                "models/kpi/kpi_quarterly.sql"]
    # A label names the contract's numbers through dbt vars: a changed var changes the label.
    settings = project / "dbt_project.yml"
    assert "contact_after_loss_days: 30\n" in settings.read_text()
    settings.write_text(settings.read_text().replace("contact_after_loss_days: 30\n", "contact_after_loss_days: 45\n"))

    env = {**os.environ, "DBT_HOST": "localhost", "DBT_PORT": "5432", "DBT_USER": "winback", "DBT_PASSWORD": "",
           "DBT_DBNAME": "winback", "DBT_PROFILES_DIR": str(project)}
    done = subprocess.run([str(Path(sys.executable).with_name("dbt")), "parse"], cwd=project, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    definition = kpi_definition.load(project / "target" / "manifest.json")

    assert definition.column("lost_contacted_share").label == "Lost and contacted ≤ 45 days"
    # the definition and the model SQL agree
    assert definition.names[-1] == NEW_KPI and definition.column(NEW_KPI).data_type == "numeric"
    check_model_sql(project / "models" / "kpi", definition)
    # publish copies and fingerprints it
    for staged, published, keys in ((kpi_definition.STAGED_KPI, kpi_definition.PUBLISHED_KPI,
                                     kpi_definition.COMPANY_KEYS),
                                    (kpi_definition.STAGED_BREAKDOWN, kpi_definition.PUBLISHED_BREAKDOWN,
                                     kpi_definition.BREAKDOWN_KEYS)):
        assert f'"{NEW_KPI}"::numeric' in publish._copy_statement(definition, staged, published, keys).as_string(None)
    # the published tables get the column, the views show it, with its comment
    ddl = kpi_definition.reporting_statements(definition)
    assert any(f'add column if not exists "{NEW_KPI}" numeric' in s for s in ddl)
    assert any(s.startswith('create or replace view "reporting"."kpi_quarterly"') and f'v."{NEW_KPI}"' in s
               for s in ddl)
    # the gate checks it
    checks = {c.name for c in suites.load_suite("kpi", AS_OF, QUARTER, kpis=definition).checks}
    assert {f"kpi_quarterly.{NEW_KPI}_not_negative", f"kpi_quarterly_breakdown.{NEW_KPI}_not_negative"} <= checks
    # the report shows it: a secondary figure and a breakdown column, with its label and format
    assert render.secondary(definition)[-1] == render.Kpi(NEW_KPI, "Revenue lost per lost client", "money", False,
                                                          "revenue lost ÷ lost clients")
    assert render.table_columns(definition.breakdown_columns)[-1] == {
        "key": NEW_KPI, "heading": "revenue lost per client", "kind": "money"}
