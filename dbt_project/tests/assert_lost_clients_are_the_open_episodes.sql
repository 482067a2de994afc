-- The work list holds exactly the clients whose latest episode has no return by D.

with open_episodes as (

    select
        client_id,
        lost_date
    from {{ ref('fct_lost_episodes') }}
    where not is_returned

),

listed as (

    select
        client_id,
        lost_date
    from {{ ref('lost_clients') }}

),

missing as (

    select
        client_id,
        lost_date
    from open_episodes
    except
    select
        client_id,
        lost_date
    from listed

),

extra as (

    select
        client_id,
        lost_date
    from listed
    except
    select
        client_id,
        lost_date
    from open_episodes

)

select
    'missing from lost_clients' as problem,
    client_id,
    lost_date
from missing
union all
select
    'not an open episode' as problem,
    client_id,
    lost_date
from extra
