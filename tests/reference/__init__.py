"""An independent reference implementation of the metric contract (a test oracle).

Written from ``docs/metrics.md`` and the mart interface only, never from the dbt SQL, so
the integration tests can compare the marts with a second, plain-Python reading of the
same contract.
"""
