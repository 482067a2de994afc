{#
    The as-of date D of the run, as a SQL date expression. Every model reads D through
    this macro; nothing dated after D is used for a figure about D. D comes from, in order:

    1. var('as_of_date'): an ad-hoc `dbt run --vars '{as_of_date: ...}'`, the unit tests;
    2. the environment variable WINBACK_AS_OF_DATE (YYYY-MM-DD): what the DAGs, the CLI
       and the bench set. It is read only while executing, never while parsing, so a new
       D each night keeps dbt's partial parsing (a changed --vars value makes dbt parse
       the whole project again, about 3 s a run and a Cosmos task);
    3. current_date.

    A malformed value fails the run in PostgreSQL's date cast.
#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none and execute -%}
        {%- set value = env_var('WINBACK_AS_OF_DATE', '') -%}
    {%- endif -%}
    {%- if value is none or (value | string | trim | lower) in ('', 'none', 'null') -%}
        current_date
    {%- else -%}
        cast('{{ value | string | trim | replace("'", "") }}' as date)
    {%- endif -%}
{%- endmacro %}


{#
    Post-hook of a small incremental mart whose as_of_date column is D: the rows it kept
    from earlier runs take this run's D. Only for tables of a few thousand rows at most
    (their figures are those a full refresh would compute; only the date moves), never
    for a per-client table.
#}
{% macro restamp_as_of_date() -%}
    update {{ this }} set as_of_date = {{ as_of_date() }} where as_of_date is distinct from {{ as_of_date() }}
{%- endmacro %}
