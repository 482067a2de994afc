{#
    Post-hook of every model: ANALYZE a table the run has just built whole (a table
    model, or an incremental model's first build or full refresh), so the next queries
    over it are planned from its statistics. Without them PostgreSQL guesses a third of
    the rows for a range condition, and the nightly run's "changed since the last
    build" lookups ran as hash joins over whole tables instead of index scans. An
    incremental run changes few rows; autovacuum keeps their statistics.
#}
{% macro analyze_after_build() -%}
    {%- if model.config.materialized in ('table', 'incremental') and not is_incremental() -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
