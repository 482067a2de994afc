{#
    The contract's lost threshold T of a client in days (docs/metrics.md), most specific
    rule first:
    - with the adaptive rule (var adaptive_threshold_enabled), for a client with a median
      gap between purchase days: clamp(ceil(adaptive_k x median gap), adaptive_min_days,
      adaptive_max_days);
    - else its industry's L (var lost_after_days_by_industry, keys as the industry is
      written in the clients export);
    - else L (var lost_after_days).
#}
{% macro lost_threshold_days(median_gap_days, industry) -%}
{%- set by_industry = var('lost_after_days_by_industry') or {} -%}
{%- set segment_threshold -%}
{%- if by_industry -%}
case {{ industry }}
{%- for name in by_industry | list | sort %} when '{{ name | replace("'", "''") }}' then {{ by_industry[name] | int }}
{%- endfor %} else {{ var('lost_after_days') | int }} end
{%- else -%}
{{ var('lost_after_days') | int }}
{%- endif -%}
{%- endset -%}
{%- if flag_var('adaptive_threshold_enabled') -%}
case
    -- greatest() / least() skip nulls: a client without a gap must not get the minimum
    when {{ median_gap_days }} is null then {{ segment_threshold }}
    else cast(least(
        greatest(ceil({{ var('adaptive_k') }} * {{ median_gap_days }}), {{ var('adaptive_min_days') }}),
        {{ var('adaptive_max_days') }}
    ) as integer)
end
{%- else -%}
{{ segment_threshold }}
{%- endif -%}
{%- endmacro %}


{#
    The least and the greatest lost threshold T any client can have, in days: L and the
    industries' L, and with the adaptive rule on, also its clamp bounds.
#}
{% macro lost_threshold_bounds() -%}
{%- set thresholds = [var('lost_after_days') | int] -%}
{%- set by_industry = var('lost_after_days_by_industry') or {} -%}
{%- for name in by_industry | list -%}
{%- do thresholds.append(by_industry[name] | int) -%}
{%- endfor -%}
{%- if flag_var('adaptive_threshold_enabled') -%}
{%- do thresholds.append(var('adaptive_min_days') | int) -%}
{%- do thresholds.append(var('adaptive_max_days') | int) -%}
{%- endif -%}
{{- return([thresholds | min, thresholds | max]) -}}
{%- endmacro %}
