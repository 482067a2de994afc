{#
    Post-hook of every model: ANALYZE a table the run has just built whole (a table
    model, or an incremental model's first build or full refresh), so the next queries
    over it are planned from its statistics. Without them PostgreSQL guesses a third of
    the rows for a range condition, and the nightly run's "changed since the last
    build" lookups ran as hash joins over whole tables instead of index scans. An
    incremental run changes few rows; autovacuum keeps their statistics.

    A table model with meta analyze_after_build: false (the marts rebuilt whole every night,
    dbt_project.yml) is left to autovacuum: only BI views and client_value read them,
    whole, and their ANALYZE cost 2.2-2.9 s of SQL a night at size L (summed over dbt's
    two threads, BENCHMARKS.md). An incremental model built whole is always analyzed: the next
    night's change detection reads it by range.
#}
{% macro analyze_after_build() -%}
    {%- set materialized = model.config.materialized -%}
    {%- if (materialized == 'incremental' and not is_incremental())
           or (materialized == 'table' and model.config.meta.get('analyze_after_build', true)) -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
