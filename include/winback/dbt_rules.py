"""The dbt project's structural rules, checked on its manifest (``dbt_project/target/manifest.json``).

Issue 16 ("one owner per concept") asks that dbt's graph be the real one and every model
state its grain and its columns. The rules that a manifest can show:

* ``marts_ref_staging``: a marts model reads staging only through an intermediate model;
* ``upstream_ref``: no model reads a model of a later layer (staging, intermediate, marts,
  kpi or quarterly, reporting in that order): e.g. an intermediate model never reads a mart;
* ``mart_view``: a mart is a table (or incremental): a view in marts only renames the model
  under it, and the mart's logic then lives elsewhere;
* ``grain_test``: every model states its grain: a grain test (``unique`` on one column or
  ``unique_combination_of_columns``) or, on a table or incremental model, a unique index
  in its ``indexes`` config. PostgreSQL checks such an index on every write, so a test
  of the same grain would only read the whole table again (at 10 M lines, ~30 s of a
  night's tests);
* ``no_documented_column`` / ``undocumented_column``: every model documents at least one
  column in its ``.yml`` and every documented column has a description (whether every
  column the SQL produces is listed needs the database: the catalog, not the manifest);
* ``too_many_parents``: no model has more than :data:`MAX_PARENTS` parents;
* ``depends_on_comment``: no ``-- depends_on:`` comment in a model (a hidden dependency);
* ``hidden_ref``: every ``ref('…')`` written in a model is among its parents (a ref inside
  an ``is_incremental()`` branch is not seen by dbt's parser);
* ``ref_in_macro``: no ``ref(`` in the project's macros (outside Jinja comments): a macro
  takes the relations it reads as arguments, so the calling model's graph shows them.

``python -m winback.dbt_rules [manifest.json]`` prints the violations and exits 1 if any.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winback.dbt import manifest_path

MAX_PARENTS = 7
# The layers in the order data flows through them: a model reads only its own layer or earlier ones.
LAYER_ORDER = {"staging": 0, "intermediate": 1, "marts": 2, "kpi": 3, "quarterly": 3, "reporting": 4}
GRAIN_TESTS = ("unique", "unique_combination_of_columns")

_DEPENDS_ON = re.compile(r"--\s*depends_on\s*:", re.IGNORECASE)
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_SQL_COMMENT = re.compile(r"--[^\n]*")
_REF_CALL = re.compile(r"\bref\s*\(")
_REF_NAME = re.compile(r"\bref\s*\(\s*['\"]([^'\"]+)['\"]\s*(?:,\s*['\"]([^'\"]+)['\"]\s*)?\)")


@dataclass(frozen=True)
class Violation:
    rule: str
    node: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.node}: {self.message}"


def load_manifest(path: Path | str | None = None) -> dict[str, Any]:
    return json.loads(Path(path or manifest_path()).read_text())


def _layer(node: dict[str, Any]) -> str:
    """The folder under models/ (staging, intermediate, marts, ...): fqn = [project, folder, ..., name]."""
    fqn = node.get("fqn") or []
    return fqn[1] if len(fqn) > 2 else ""


def _models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    project = (manifest.get("metadata") or {}).get("project_name")
    return {uid: node for uid, node in manifest.get("nodes", {}).items()
            if node.get("resource_type") == "model" and (project is None or node.get("package_name") == project)}


def _grain_tested(manifest: dict[str, Any]) -> set[str]:
    """The models with a grain test attached."""
    tested = set()
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "test":
            continue
        if ((node.get("test_metadata") or {}).get("name")) not in GRAIN_TESTS:
            continue
        attached = node.get("attached_node")
        tested.update([attached] if attached else (node.get("depends_on") or {}).get("nodes", []))
    return tested


def _grain_indexed(node: dict[str, Any]) -> bool:
    """Whether the model is a table (or incremental) with a unique index (dbt-postgres'
    ``indexes`` config): the database then refuses a second row of the same grain."""
    config = node.get("config") or {}
    return config.get("materialized") in ("table", "incremental") and any(
        (index or {}).get("unique") for index in config.get("indexes") or [])


def violations(manifest: dict[str, Any]) -> list[Violation]:
    """Every rule broken by the manifest's models and macros, in a stable order."""
    found: list[Violation] = []
    nodes = manifest.get("nodes", {})
    models = _models(manifest)
    tested = _grain_tested(manifest)
    for uid, node in sorted(models.items()):
        name = node.get("name", uid)
        parents = list(dict.fromkeys((node.get("depends_on") or {}).get("nodes", [])))
        layer = _layer(node)
        if layer == "marts":
            for parent in parents:
                if parent in nodes and _layer(nodes[parent]) == "staging":
                    found.append(Violation("marts_ref_staging", name,
                                           f"refs the staging model {nodes[parent]['name']} (go through an "
                                           "intermediate model)"))
            if (node.get("config") or {}).get("materialized") == "view":
                found.append(Violation("mart_view", name, "is a view (a mart holds its logic: a table or incremental)"))
        for parent in parents:
            parent_layer = _layer(nodes[parent]) if parent in nodes else None
            if parent_layer in LAYER_ORDER and layer in LAYER_ORDER and LAYER_ORDER[parent_layer] > LAYER_ORDER[layer]:
                found.append(Violation("upstream_ref", name,
                                       f"a {layer} model reads the {parent_layer} model {nodes[parent]['name']}"))
        if uid not in tested and not _grain_indexed(node):
            found.append(Violation("grain_test", name, "no unique / unique_combination_of_columns test "
                                                       "and no unique index"))
        columns = node.get("columns") or {}
        if not columns:
            found.append(Violation("no_documented_column", name, "its .yml documents no column"))
        for column, spec in columns.items():
            if not (spec.get("description") or "").strip():
                found.append(Violation("undocumented_column", name, f"column {column} has no description"))
        if len(parents) > MAX_PARENTS:
            found.append(Violation("too_many_parents", name, f"{len(parents)} parents (at most {MAX_PARENTS})"))
        raw = node.get("raw_code") or ""
        if _DEPENDS_ON.search(raw):
            found.append(Violation("depends_on_comment", name, "has a '-- depends_on' comment (a hidden dependency)"))
        parent_names = {uid.split(".")[-1] for uid in parents} | {nodes[p]["name"] for p in parents if p in nodes}
        code = _SQL_COMMENT.sub("", _JINJA_COMMENT.sub("", raw))
        for match in _REF_NAME.finditer(code):
            ref = match.group(2) or match.group(1)
            if ref not in parent_names:
                found.append(Violation("hidden_ref", name,
                                       f"ref('{ref}') is not among its parents (inside an is_incremental() branch?)"))
    project = (manifest.get("metadata") or {}).get("project_name")
    for uid, macro in sorted(manifest.get("macros", {}).items()):
        if project is not None and macro.get("package_name") != project:
            continue
        if _REF_CALL.search(_JINJA_COMMENT.sub("", macro.get("macro_sql") or "")):
            found.append(Violation("ref_in_macro", macro.get("name", uid),
                                   "calls ref(): take the relation as an argument"))
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else manifest_path()
    found = violations(load_manifest(path))
    for violation in found:
        print(violation)
    if found:
        print(f"{len(found)} dbt rule violation(s) in {path}", file=sys.stderr)
        return 1
    print(f"dbt rules hold ({path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
