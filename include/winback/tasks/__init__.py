"""Task bodies, one module per DAG: what each task of ``dags/`` does when it runs.

- ``extract``: ``winback_nightly_extract`` (bootstrap, one extract per entity, the raw gate);
- ``marts``: ``winback_marts`` (the as-of date of the dbt build, the marts Asset);
- ``quarterly``: ``winback_quarterly_kpis`` (which quarters, the gates, review, publication, report);
- ``waive``: ``winback_waive`` (record a waiver from the trigger form);
- ``common``: what they share (the running task's context and conf, failing without
  retries, the as-of date of a run, the raw quality gate).

The DAG files only declare (``winback.dag_policy`` holds what they declare alike). Parsing
a DAG file imports these modules: every Airflow import here is inside a function, and
nothing connects to a database before a task runs.
"""
