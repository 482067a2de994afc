-- BI view: won-back clients per quarter of return, by the credited manager
-- (macros/winback_by_credited.sql; documented in _reporting__models.yml).

{{ winback_by_credited(ref('fct_winback_attribution'), 'attributed_manager_id', 'credited_manager_id') }}
