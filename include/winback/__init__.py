"""winback: lost-client, segment-migration and win-back KPIs for a sales organisation.

Importing the package switches off the usage telemetry of Airflow, Cosmos, dbt and
Great Expectations unless the user has set the variables themselves: a pipeline run
inside a company network should not phone home by default.
"""

import os

_TELEMETRY_OFF = {
    "SCARF_ANALYTICS": "false",
    "DO_NOT_TRACK": "1",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "GX_ANALYTICS_ENABLED": "False",
}
for _name, _value in _TELEMETRY_OFF.items():
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
