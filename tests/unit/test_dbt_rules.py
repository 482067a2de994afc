"""The dbt project's structural rules (winback.dbt_rules) on the real manifest, and each rule firing."""

from __future__ import annotations

import copy

import pytest

from winback import dbt, dbt_rules


@pytest.fixture(scope="module")
def manifest():
    # dbt parse (no database): the manifest of the working tree, as `make test` builds it.
    return dbt_rules.load_manifest(dbt.build_manifest())


def test_the_project_keeps_its_rules(manifest):
    found = dbt_rules.violations(manifest)
    assert not found, "\n".join(map(str, found))


def test_the_real_manifest_has_the_layers_the_rules_look_at(manifest):
    models = dbt_rules._models(manifest)
    layers = {dbt_rules._layer(node) for node in models.values()}
    assert {"staging", "intermediate", "marts"} <= layers
    assert any(name == "changed_clients" for name in (m["name"] for m in manifest["macros"].values()))


def _model(name: str, layer: str, parents=(), raw_code: str = "select 1", columns=None) -> dict:
    return {"resource_type": "model", "package_name": "winback", "name": name,
            "fqn": ["winback", layer, name], "raw_code": raw_code,
            "depends_on": {"nodes": [f"model.winback.{p}" for p in parents]},
            "columns": {"id": {"name": "id", "description": "Key."}} if columns is None else columns}


def _grain(model: str) -> dict:
    return {"resource_type": "test", "package_name": "winback", "name": f"unique_{model}_id",
            "test_metadata": {"name": "unique", "kwargs": {"column_name": "id"}},
            "attached_node": f"model.winback.{model}", "depends_on": {"nodes": [f"model.winback.{model}"]}}


def _clean() -> dict:
    nodes = {
        "model.winback.stg_a": _model("stg_a", "staging"),
        "model.winback.int_a": _model("int_a", "intermediate", ["stg_a"], "select * from {{ ref('stg_a') }}"),
        "model.winback.fct_a": _model("fct_a", "marts", ["int_a"], "select * from {{ ref('int_a') }}"),
    }
    for name in ("stg_a", "int_a", "fct_a"):
        nodes[f"test.winback.unique_{name}_id"] = _grain(name)
    macros = {"macro.winback.helper": {"name": "helper", "package_name": "winback",
                                       "macro_sql": "{% macro helper(relation) %}\n{# not ref('x') #}\n"
                                                    "select * from {{ relation }}\n{% endmacro %}"},
              "macro.dbt.other": {"name": "other", "package_name": "dbt",
                                  "macro_sql": "{% macro other() %}{{ ref('x') }}{% endmacro %}"}}
    return {"metadata": {"project_name": "winback"}, "nodes": nodes, "macros": macros}


def rules(manifest: dict) -> set[tuple[str, str]]:
    return {(v.rule, v.node) for v in dbt_rules.violations(manifest)}


def test_a_clean_small_manifest_passes():
    assert rules(_clean()) == set()


def test_a_mart_reading_staging_is_reported():
    manifest = _clean()
    manifest["nodes"]["model.winback.fct_a"]["depends_on"]["nodes"].append("model.winback.stg_a")
    manifest["nodes"]["model.winback.fct_a"]["raw_code"] += " join {{ ref('stg_a') }} using (id)"
    assert rules(manifest) == {("marts_ref_staging", "fct_a")}


def test_an_intermediate_model_reading_a_mart_is_reported():
    manifest = _clean()
    manifest["nodes"]["model.winback.int_a"]["depends_on"]["nodes"].append("model.winback.fct_a")
    manifest["nodes"]["model.winback.int_a"]["raw_code"] += " join {{ ref('fct_a') }} using (id)"
    assert rules(manifest) == {("upstream_ref", "int_a")}


def test_a_mart_that_is_a_view_is_reported():
    manifest = _clean()
    manifest["nodes"]["model.winback.fct_a"]["config"] = {"materialized": "view"}
    assert rules(manifest) == {("mart_view", "fct_a")}
    manifest["nodes"]["model.winback.fct_a"]["config"] = {"materialized": "incremental"}
    assert rules(manifest) == set()


def test_a_model_without_a_grain_test_is_reported():
    manifest = _clean()
    del manifest["nodes"]["test.winback.unique_int_a_id"]
    assert rules(manifest) == {("grain_test", "int_a")}
    combination = copy.deepcopy(_grain("int_a"))
    combination["test_metadata"] = {"name": "unique_combination_of_columns",
                                    "kwargs": {"combination_of_columns": ["id", "day"]}}
    manifest["nodes"]["test.winback.combination_int_a"] = combination
    assert rules(manifest) == set()
    manifest["nodes"]["test.winback.combination_int_a"]["test_metadata"]["name"] = "not_null"
    assert rules(manifest) == {("grain_test", "int_a")}


def test_a_unique_index_on_a_table_states_its_grain():
    manifest = _clean()
    del manifest["nodes"]["test.winback.unique_int_a_id"]
    model = manifest["nodes"]["model.winback.int_a"]
    model["config"] = {"materialized": "incremental", "indexes": [{"columns": ["id"], "unique": False}]}
    assert rules(manifest) == {("grain_test", "int_a")}
    model["config"]["indexes"].append({"columns": ["id", "day"], "unique": True})
    assert rules(manifest) == set()
    # a view has no index: its unique index config would state nothing
    model["config"]["materialized"] = "view"
    assert rules(manifest) == {("grain_test", "int_a")}


def test_undocumented_columns_are_reported():
    manifest = _clean()
    manifest["nodes"]["model.winback.int_a"]["columns"] = {}
    manifest["nodes"]["model.winback.fct_a"]["columns"]["amount"] = {"name": "amount", "description": " "}
    assert rules(manifest) == {("no_documented_column", "int_a"), ("undocumented_column", "fct_a")}


def test_a_model_with_more_than_seven_parents_is_reported():
    manifest = _clean()
    parents = [f"int_{i}" for i in range(8)]
    for name in parents:
        manifest["nodes"][f"model.winback.{name}"] = _model(name, "intermediate")
        manifest["nodes"][f"test.winback.unique_{name}_id"] = _grain(name)
    manifest["nodes"]["model.winback.fct_a"]["depends_on"]["nodes"] = [f"model.winback.{p}" for p in parents]
    manifest["nodes"]["model.winback.fct_a"]["raw_code"] = "select 1"
    assert rules(manifest) == {("too_many_parents", "fct_a")}
    manifest["nodes"]["model.winback.fct_a"]["depends_on"]["nodes"].pop()
    assert rules(manifest) == set()


def test_a_depends_on_comment_is_reported():
    manifest = _clean()
    manifest["nodes"]["model.winback.fct_a"]["raw_code"] = ("-- depends_on: {{ ref('int_a') }}\n"
                                                            "select * from {{ ref('int_a') }}")
    assert rules(manifest) == {("depends_on_comment", "fct_a")}


def test_a_ref_dbt_does_not_see_is_reported():
    manifest = _clean()
    manifest["nodes"]["model.winback.fct_a"]["raw_code"] = (
        "select * from {{ ref('int_a') }}\n"
        "{% if is_incremental() %} where id in (select id from {{ ref('stg_a') }}) {% endif %}")
    assert rules(manifest) == {("hidden_ref", "fct_a")}


def test_a_ref_inside_a_project_macro_is_reported():
    manifest = _clean()
    manifest["macros"]["macro.winback.helper"]["macro_sql"] = (
        "{% macro helper() %}select * from {{ ref('int_a') }}{% endmacro %}")
    assert rules(manifest) == {("ref_in_macro", "helper")}


def test_the_command_prints_the_violations_and_fails(tmp_path, capsys):
    import json

    manifest = _clean()
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    assert dbt_rules.main([str(path)]) == 0
    del manifest["nodes"]["test.winback.unique_fct_a_id"]
    path.write_text(json.dumps(manifest))
    assert dbt_rules.main([str(path)]) == 1
    assert "grain_test: fct_a" in capsys.readouterr().out
