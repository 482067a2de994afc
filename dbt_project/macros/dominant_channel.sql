{#
    The "dominant channel" of a client in a window (metrics.md): the sales channel with the
    most net revenue on the client's days in [window_start, window_end], ties in
    alphabetical order; one row per row of periods (its key columns keys, a client_id
    column among them). channel_days: int_client_channel_days. A client without sales in
    the window has no row (callers say 'unknown').
#}
{% macro dominant_channel(periods, keys, window_start, window_end, channel_days) -%}
    select distinct on ({{ keys | join(', ') }})
        {{ keys | join(', ') }},
        channel as sales_channel
    from (
        select
            periods.{{ keys | join(', periods.') }},
            channel_days.channel,
            sum(channel_days.net_amount) as net_amount
        from {{ periods }} as periods
        inner join {{ channel_days }} as channel_days
            on
                periods.client_id = channel_days.client_id
                and channel_days.order_date between {{ window_start }} and {{ window_end }}
        group by periods.{{ keys | join(', periods.') }}, channel_days.channel
    ) as by_channel
    order by {{ keys | join(' asc, ') }} asc, net_amount desc, channel asc
{%- endmacro %}
