{#
    Custom schema names are used verbatim (staging, intermediate, marts, kpi_staging):
    the warehouse bootstrap creates exactly these schemas and grants on them. A model
    without a custom schema lands in the target schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
