"""The one home of winback's settings.

Every setting is read from an environment variable (``WINBACK_<NAME>``) or from a TOML
file (``winback.toml`` in the project directory, or the file named by
``WINBACK_CONFIG_FILE``); the environment wins over the file. The two database
connections also accept Airflow's own variables, ``AIRFLOW_CONN_WAREHOUSE`` and
``AIRFLOW_CONN_SALES_SOURCE``, so one value serves Airflow, dbt and the CLI.

The numbers of the metric contract (L = ``lost_after_days``, the ABC/XYZ cut-offs, the
return windows, ...) are *not* defined here: they live once, as dbt vars in
``dbt_project/dbt_project.yml``. This module only validates overrides of them
(``WINBACK_METRIC_OVERRIDES``) against that file.
"""

from __future__ import annotations

import codecs
import datetime as dt
import functools
import json
import os
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

WAREHOUSE_CONN_ID = "warehouse"
SOURCE_CONN_ID = "sales_source"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the setting."""


def _default_project_dir() -> Path:
    explicit = os.environ.get("WINBACK_PROJECT_DIR")
    if explicit:
        return Path(explicit).resolve()
    # include/winback/config.py -> the repository root (editable install or a checkout).
    candidate = Path(__file__).resolve().parents[2]
    if (candidate / "dbt_project").is_dir():
        return candidate
    return Path.cwd().resolve()


def _config_file(project_dir: Path) -> Path:
    return Path(os.environ.get("WINBACK_CONFIG_FILE") or project_dir / "winback.toml")


class FileSettings(BaseModel):
    """How exported files are written, when detection is not enough (``[files]`` in winback.toml).
    Unset: detected per file (a ``;`` header means ``;`` and a decimal comma; bytes that are
    not UTF-8 but Windows-1251 text mean ``cp1251``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delimiter: Literal[",", ";", "\t", "|"] | None = None
    decimal: Literal[".", ","] | None = None
    encoding: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r} (e.g. 'utf-8', 'cp1251')") from None
        return value


class Settings(BaseSettings):
    """Validated settings. Build with :func:`get_settings`, not directly."""

    model_config = SettingsConfigDict(env_prefix="WINBACK_", extra="forbid", frozen=True, populate_by_name=True)

    project_dir: Path = Field(default_factory=_default_project_dir)
    # Local state: the embedded PostgreSQL data directory, AIRFLOW_HOME, the demo landing folder.
    home: Path | None = None

    # Connections. Unset means: start the embedded PostgreSQL and use a database on it.
    warehouse_url: str | None = Field(
        default=None, validation_alias=AliasChoices("WINBACK_WAREHOUSE_URL", "AIRFLOW_CONN_WAREHOUSE")
    )
    source_url: str | None = Field(
        default=None, validation_alias=AliasChoices("WINBACK_SOURCE_URL", "AIRFLOW_CONN_SALES_SOURCE")
    )
    warehouse_db: str = "winback"
    source_db: str = "winback_source"

    # Where file drops land: a local folder or any fsspec URL (s3://, gs://, memory://, ...).
    landing_url: str | None = None
    # Which kind of source the sales lines come from: the sales system's database or file drops.
    sales_source: Literal["sql", "files"] = "sql"
    # A fixed as-of date (bring-your-own-data runs); unset means the run's data interval end.
    as_of_date: dt.date | None = None

    timezone: str = "UTC"
    extract_schedule: str = "30 2 * * *"
    # Day of the month after a quarter closes on which the quarterly DAG publishes it.
    quarterly_publish_day: int = Field(default=5, ge=1, le=28)

    lookback_days: int = Field(default=3, ge=0, le=365)
    quarantine_max_share: float = Field(default=0.05, ge=0.0, le=1.0)
    # Bytes of CSV per COPY chunk: bounds memory (the extract's peak grows by about 9-14 MB per
    # MB of chunk: the chunks read ahead and their Arrow tables, bench/), and the unit a bad row
    # sends down the slow path. 1 MiB loads as fast as larger chunks (measured: bench/).
    chunk_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    # Exported files: delimiter, decimal mark and encoding when detection is not enough.
    files: FileSettings = Field(default_factory=FileSettings)
    # Per entity, the export's header for a contract column, e.g. [columns.sales_lines]
    # order_date = "Дата" (docs/data-contract.md).
    columns: dict[str, dict[str, str]] = Field(default_factory=dict)

    # First loads into an empty raw table COPY clean chunks straight into it (extract/bulk.py),
    # holding an exclusive lock on it until the commit. Off: every load stages (the benchmark
    # measures both).
    bulk_load: bool = True

    # JSON object overriding metric-contract dbt vars, e.g. {"lost_after_days": 120}.
    metric_overrides: dict[str, Any] = Field(default_factory=dict)

    # First retry delay of a failed task (doubling up to 30 min). Interactive runs (the demo,
    # tests) set it low so a failure surfaces in seconds rather than after the backoff.
    retry_delay_seconds: int = Field(default=120, ge=1, le=3600)

    # Publications whose gate runs have warnings or waivers wait for a person's approval in
    # the quarterly DAG (Airflow's human-in-the-loop ApprovalOperator). auto: in deployed runs
    # only (an in-process CLI run has nobody to answer; its operator gave the waivers);
    # required: in every run, the CLI's included; off: never.
    publish_approval: Literal["auto", "required", "off"] = "auto"

    # Optional webhook for failure alerts (Airflow notifier); empty means log only.
    alert_webhook_url: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file(_default_project_dir()))
        return init_settings, env_settings, toml

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')") from exc
        return value

    @field_validator("extract_schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '30 2 * * *')")
        return value

    @field_validator("warehouse_url", "source_url")
    @classmethod
    def _postgres_uri(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a PostgreSQL URI such as postgresql://user:password@host:5432/dbname")
        return value

    @field_validator("columns")
    @classmethod
    def _known_contract_columns(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        if not value:
            return value
        from winback.extract.contract import ENTITIES

        for entity, mapping in value.items():
            if entity not in ENTITIES:
                raise ValueError(f"[columns.{entity}]: no entity {entity!r} in the data contract "
                                 f"({', '.join(ENTITIES)})")
            unknown = set(mapping) - set(ENTITIES[entity].column_names)
            if unknown:
                raise ValueError(f"[columns.{entity}] maps {', '.join(sorted(unknown))}, which the contract's "
                                 f"{entity} does not have (it has {', '.join(ENTITIES[entity].column_names)})")
        return value

    @model_validator(mode="after")
    def _known_metric_vars(self) -> Settings:
        unknown = set(self.metric_overrides) - set(metric_contract_defaults(self.project_dir))
        if unknown:
            raise ValueError(f"metric_overrides names unknown dbt vars: {', '.join(sorted(unknown))}")
        return self

    # ---- derived locations -------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return (self.home or self.project_dir / ".winback").resolve()

    @property
    def pgdata_dir(self) -> Path:
        return self.state_dir / "pgdata"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def landing(self) -> str:
        return self.landing_url or str(self.state_dir / "landing")

    @property
    def output_dir(self) -> Path:
        return self.state_dir / "output"

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_dir / "dbt_project"

    @property
    def dags_dir(self) -> Path:
        return self.project_dir / "dags"

    @property
    def uses_embedded_warehouse(self) -> bool:
        return self.warehouse_url is None

    def file_format(self):
        """The landing files' format as the readers take it (``extract.formats.FileFormat``)."""
        from winback.extract.formats import FileFormat

        return FileFormat(self.files.delimiter, self.files.decimal, self.files.encoding, self.columns)

    def dbt_vars(self) -> dict[str, Any]:
        """The metric-contract vars with the user's overrides applied (defaults from dbt)."""
        return {**metric_contract_defaults(self.project_dir), **self.metric_overrides}


@functools.cache
def metric_contract_defaults(project_dir: Path) -> dict[str, Any]:
    """The dbt vars of ``dbt_project.yml``: the single definition of every contract number."""
    path = project_dir / "dbt_project" / "dbt_project.yml"
    if not path.exists():
        return {}
    return dict(yaml.safe_load(path.read_text()).get("vars") or {})


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        env_name = name if name.isupper() else f"WINBACK_{name.upper()}"
        lines.append(f"invalid setting {env_name}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(lines)


def get_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raise :class:`ConfigError` naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except (json.JSONDecodeError, ValueError) as exc:  # e.g. a non-JSON WINBACK_METRIC_OVERRIDES
        raise ConfigError(f"invalid setting: {exc}") from None
