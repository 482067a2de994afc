{#
    Calendar helpers (PostgreSQL). Dates are cast to timestamp without time zone so the
    session time zone never shifts a day.
#}
{% macro quarter_start(date_expression) -%}
    cast(date_trunc('quarter', cast({{ date_expression }} as timestamp)) as date)
{%- endmacro %}

{% macro month_start(date_expression) -%}
    cast(date_trunc('month', cast({{ date_expression }} as timestamp)) as date)
{%- endmacro %}

{% macro add_months(date_expression, months) -%}
    cast(cast({{ date_expression }} as timestamp) + interval '{{ months }} months' as date)
{%- endmacro %}

{% macro quarter_end(date_expression) -%}
    ({{ add_months(quarter_start(date_expression), 3) }} - 1)
{%- endmacro %}
