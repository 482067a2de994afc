{#
    The as-of date D of the run, as a SQL date expression: var('as_of_date') when set
    (the DAGs pass the data interval end, YYYY-MM-DD), else current_date. Every model
    reads D through this macro; nothing dated after D is used for a figure about D.
    A malformed value fails the run in PostgreSQL's date cast.
#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none or (value | string | trim | lower) in ('', 'none', 'null') -%}
        current_date
    {%- else -%}
        cast('{{ value | string | trim | replace("'", "") }}' as date)
    {%- endif -%}
{%- endmacro %}
