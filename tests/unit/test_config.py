"""The configuration module: defaults, validation messages, the metric-contract home."""

import pytest

from winback.config import ConfigError, get_settings


def test_defaults_use_the_embedded_warehouse(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)
    monkeypatch.delenv("WINBACK_WAREHOUSE_URL", raising=False)
    settings = get_settings()
    assert settings.uses_embedded_warehouse
    assert settings.pgdata_dir.parent == settings.state_dir


def test_airflow_connection_variable_configures_the_warehouse(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", "postgresql://bi:pw@db.internal:5432/dwh")
    settings = get_settings()
    assert settings.warehouse_url == "postgresql://bi:pw@db.internal:5432/dwh"
    assert not settings.uses_embedded_warehouse


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("WINBACK_TIMEZONE", "Mars/Olympus", "WINBACK_TIMEZONE"),
        ("WINBACK_EXTRACT_SCHEDULE", "every night", "WINBACK_EXTRACT_SCHEDULE"),
        ("WINBACK_QUARANTINE_MAX_SHARE", "1.5", "WINBACK_QUARANTINE_MAX_SHARE"),
        ("WINBACK_LOOKBACK_DAYS", "-1", "WINBACK_LOOKBACK_DAYS"),
        ("WINBACK_WAREHOUSE_URL", "mysql://x@y/z", "WINBACK_WAREHOUSE_URL"),
        ("WINBACK_SALES_SOURCE", "ftp", "WINBACK_SALES_SOURCE"),
    ],
)
def test_a_bad_setting_fails_with_its_name(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert named in str(caught.value)


def test_settings_file_is_read_and_environment_wins(monkeypatch, tmp_path):
    config = tmp_path / "winback.toml"
    config.write_text('timezone = "Europe/Berlin"\nlookback_days = 7\n')
    monkeypatch.setenv("WINBACK_CONFIG_FILE", str(config))
    monkeypatch.setenv("WINBACK_LOOKBACK_DAYS", "2")
    settings = get_settings()
    assert settings.timezone == "Europe/Berlin"
    assert settings.lookback_days == 2


def test_metric_overrides_must_name_known_dbt_vars(monkeypatch):
    monkeypatch.setenv("WINBACK_METRIC_OVERRIDES", '{"lost_after_days": 120}')
    assert get_settings().dbt_vars()["lost_after_days"] == 120
    monkeypatch.setenv("WINBACK_METRIC_OVERRIDES", '{"lost_afterdays": 120}')
    with pytest.raises(ConfigError, match="lost_afterdays"):
        get_settings()


def test_contract_numbers_come_from_dbt_project_vars():
    defaults = get_settings().dbt_vars()
    assert defaults["lost_after_days"] == 180
    assert defaults["abc_a_share"] == 0.8
