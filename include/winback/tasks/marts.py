"""Task bodies of ``winback_marts``: the as-of date of the dbt build
(``common.resolve_as_of``) and the announcement of the rebuilt marts."""

from __future__ import annotations


def announce_marts() -> None:
    """Once every model and test passed (the BI views included: they are dbt models, tag
    reporting), mark the marts updated (the task's outlet Asset)."""
