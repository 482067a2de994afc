{#
    A boolean dbt var that may arrive as a real boolean (dbt_project.yml) or as a string
    ("true" / "false", from --vars on a command line or an Airflow conf).
#}
{% macro flag_var(name) -%}
    {{- return((var(name) | string | trim | lower) in ('true', '1', 'yes', 'on')) -}}
{%- endmacro %}
