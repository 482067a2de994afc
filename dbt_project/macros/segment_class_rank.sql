{#
    Order of segment classes, higher is better: 4 x the ABC letter's rank (A 3, B 2, C 1)
    + the XYZ letter's rank (X 3, Y 2, Z 1); N (and any other value) counts 0. Works for
    'A'/'B'/'C', 'X'/'Y'/'Z' and two-letter ABC-XYZ classes alike.
#}
{% macro segment_class_rank(class_expression) -%}
    (
        4 * case left({{ class_expression }}, 1) when 'A' then 3 when 'B' then 2 when 'C' then 1 else 0 end
        + case right({{ class_expression }}, 1) when 'X' then 3 when 'Y' then 2 when 'Z' then 1 else 0 end
    )
{%- endmacro %}
