{#
    The contract's lost threshold T of a client in days (docs/metrics.md): L (var
    lost_after_days), or with the adaptive rule (var adaptive_threshold_enabled)
    clamp(ceil(adaptive_k x median gap between purchase days), adaptive_min_days,
    adaptive_max_days) for a client with a median gap (L for the others).
#}
{% macro lost_threshold_days(median_gap_days) -%}
    {%- if flag_var('adaptive_threshold_enabled') -%}
        case
            -- greatest() / least() skip nulls: a client without a gap must not get the minimum
            when {{ median_gap_days }} is null then {{ var('lost_after_days') }}
            else cast(least(
                    greatest(
                        ceil({{ var('adaptive_k') }} * {{ median_gap_days }}),
                        {{ var('adaptive_min_days') }}
                    ),
                    {{ var('adaptive_max_days') }}
                ) as integer)
        end
    {%- else -%}
        {{ var('lost_after_days') }}
    {%- endif -%}
{%- endmacro %}


{#
    The least and the greatest lost threshold T any client can have, in days: L, or with
    the adaptive rule on, also its clamp bounds.
#}
{% macro lost_threshold_bounds() -%}
    {%- set lost_after = var('lost_after_days') | int -%}
    {%- if flag_var('adaptive_threshold_enabled') -%}
        {%- set low = [var('adaptive_min_days') | int, lost_after] | min -%}
        {%- set high = [var('adaptive_max_days') | int, lost_after] | max -%}
        {{- return([low, high]) -}}
    {%- endif -%}
    {{- return([lost_after, lost_after]) -}}
{%- endmacro %}
