{#
    A post-hook for a per-client model whose rows carry the client's current CRM attributes
    (columns of the same names, 'unknown' when absent): on an incremental run, set them
    from the clients relation where they differ, instead of recomputing every client whose
    CRM row was re-delivered. A manager's reassignment of thousands of clients then costs
    an update of their rows, not a recomputation of their figures. A full refresh reads
    the attributes in the model itself.
#}
{% macro refresh_client_attributes(clients, columns) -%}
{%- if is_incremental() -%}
update {{ this }} as target
set {% for column in columns %}{{ column }} = coalesce(clients.{{ column }}, 'unknown'){{ ", " if not loop.last }}{% endfor %}
from {{ clients }} as clients
where target.client_id = clients.client_id and ({% for column in columns %}target.{{ column }}{{ ", " if not loop.last }}{% endfor %}) is distinct from ({% for column in columns %}coalesce(clients.{{ column }}, 'unknown'){{ ", " if not loop.last }}{% endfor %})
{%- else -%}
select 1
{%- endif -%}
{%- endmacro %}
