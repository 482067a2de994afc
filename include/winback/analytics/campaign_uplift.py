"""Did a win-back campaign bring clients back who would not have come back anyway?

The uplift of docs/metrics.md ("Uplift against a baseline"): the dbt model
``intermediate.int_campaign_uplift_cells`` matches every campaign's targeted lost episodes
with lost episodes nobody contacted, cell by cell (lost quarter, ABC class before the loss,
entry month). Here the cells' differences of return shares are pooled per group (an offer
type; an offer type in a segment; a campaign) by a fixed-effect meta-analysis with its
95 % confidence interval, by statsmodels (``effectsize_2proportions``, ``combine_effects``),
and stored in ``reporting.campaign_uplift`` beside the BI views, for the report and BI tools.

Statistics live here rather than in dbt: PostgreSQL has no normal quantile, and the contract
wants a maintained library's interval, not a formula written again in SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from psycopg import sql

log = logging.getLogger(__name__)

CELLS_RELATION = "intermediate.int_campaign_uplift_cells"
UPLIFT_RELATION = ("reporting", "campaign_uplift")
CONFIDENCE = 0.95
# A cell with a return share of 0 or 1 on either side has a variance of 0 on that side: one
# targeted client who came back against many comparison clients would take nearly all the
# weight. Its variance comes from the usual continuity correction (0.5 added to each count
# of the cell, as statsmodels does for such cells), its difference stays the observed one.
ZERO_CORRECTION = 0.5

# The groups pooled, in the order stored: (grouping name, the cells' columns it groups by).
GROUPINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("offer_type", ("offer_type",)),
    ("offer_type_segment", ("offer_type", "abc_class")),
    ("campaign", ("campaign_id",)),
)

# Column name -> (SQL type, comment): the stored table and its documentation in one place.
COLUMNS: dict[str, tuple[str, str]] = {
    "grouping": ("text", "What the row pools: offer_type, offer_type_segment (offer type within an "
                         "ABC class before the loss) or campaign."),
    "offer_type": ("text", "Offer type (null when grouping = campaign)."),
    "abc_class": ("text", "ABC class before the loss (offer_type_segment rows only)."),
    "campaign_id": ("text", "Campaign (campaign rows only)."),
    "cells": ("integer", "Cells pooled (lost quarter x segment x entry month with a comparison group)."),
    "targeted_episodes": ("integer", "Targeted lost episodes in those cells."),
    "returned_episodes": ("integer", "Of them, returned within the longest campaign window of entry."),
    "comparison_episodes": ("integer", "Comparison episodes (open, never contacted) in those cells."),
    "return_rate": ("numeric", "returned_episodes / targeted_episodes."),
    "baseline_return_rate": ("numeric", "The comparison episodes' return share, weighted per cell by the "
                                        "targeted episodes: what the targeted would have done anyway."),
    "uplift": ("numeric", "Pooled difference of return shares (targeted - comparison), fixed-effect "
                          "inverse-variance weights over the cells; 0.05 = 5 percentage points."),
    "uplift_ci_low": ("numeric", "Lower end of the 95 % confidence interval of uplift (at least -1)."),
    "uplift_ci_high": ("numeric", "Upper end of the 95 % confidence interval of uplift (at most 1)."),
    "is_significant": ("boolean", "The interval excludes 0."),
}


@dataclass(frozen=True)
class Pooled:
    uplift: float
    ci_low: float
    ci_high: float


def pool_cells(treated: Sequence[int], treated_returned: Sequence[int], comparison: Sequence[int],
               comparison_returned: Sequence[int]) -> Pooled:
    """The fixed-effect pooled difference of return shares over cells, with its interval."""
    from statsmodels.stats.meta_analysis import combine_effects, effectsize_2proportions

    counts = [np.asarray(values, dtype=float) for values in
              (treated_returned, treated, comparison_returned, comparison)]
    effect, variance = effectsize_2proportions(*counts, statistic="diff")
    returned, targeted, comparison_returned, compared = counts
    degenerate = (returned == 0) | (returned == targeted) | (comparison_returned == 0) | (comparison_returned == compared)
    if degenerate.any():
        # statsmodels adds the correction to every cell it is given: give it only these.
        _, corrected = effectsize_2proportions(*(c[degenerate] for c in counts), statistic="diff",
                                               zero_correction=ZERO_CORRECTION)
        variance = variance.copy()
        variance[degenerate] = corrected
    # With one cell, the heterogeneity (random-effect) figures divide by zero: unused here.
    with np.errstate(divide="ignore", invalid="ignore"):
        combined = combine_effects(effect, variance, method_re="chi2", use_t=False, alpha=1 - CONFIDENCE)
    low, high = combined.conf_int(alpha=1 - CONFIDENCE, use_t=False)[0]
    return Pooled(float(combined.mean_effect_fe), float(low), float(high))


def uplift_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Every grouping of GROUPINGS pooled from the cells (columns of int_campaign_uplift_cells)."""
    rows = []
    for grouping, keys in GROUPINGS:
        for values, group in cells.groupby(list(keys), sort=True):
            pooled = pool_cells(group.treated_episodes, group.treated_returned,
                                group.comparison_episodes, group.comparison_returned)
            comparison_share = group.comparison_returned / group.comparison_episodes
            targeted = int(group.treated_episodes.sum())
            returned = int(group.treated_returned.sum())
            row = {"grouping": grouping, "offer_type": None, "abc_class": None, "campaign_id": None}
            row.update(zip(keys, values, strict=True))
            row.update({
                "cells": len(group),
                "targeted_episodes": targeted,
                "returned_episodes": returned,
                "comparison_episodes": int(group.comparison_episodes.sum()),
                "return_rate": round(returned / targeted, 4),
                "baseline_return_rate": round(float((comparison_share * group.treated_episodes).sum()) / targeted, 4),
                "uplift": round(pooled.uplift, 4),
                # A difference of two shares lies in [-1, 1]; the normal interval of a few
                # clients can reach past it.
                "uplift_ci_low": round(max(pooled.ci_low, -1.0), 4),
                "uplift_ci_high": round(min(pooled.ci_high, 1.0), 4),
                "is_significant": pooled.ci_low > 0 or pooled.ci_high < 0,
            })
            rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def read_cells(conn) -> pd.DataFrame:
    columns = ["campaign_id", "offer_type", "lost_quarter", "abc_class", "entry_month", "treated_episodes",
               "treated_returned", "comparison_episodes", "comparison_returned"]
    rows = conn.execute(sql.SQL("select {} from {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.Identifier(*CELLS_RELATION.split(".")))).fetchall()
    cells = pd.DataFrame(rows, columns=columns)
    for column in columns[5:]:
        cells[column] = cells[column].astype("int64")
    return cells


def store(conn, table: pd.DataFrame) -> None:
    """Replace ``reporting.campaign_uplift`` in the caller's transaction (readers see the old or the
    new table, never a half-written one)."""
    relation = sql.Identifier(*UPLIFT_RELATION)
    conn.execute(sql.SQL("drop table if exists {}").format(relation))
    conn.execute(sql.SQL("create table {} ({})").format(relation, sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, (kind, _) in COLUMNS.items())))
    conn.execute(sql.SQL("comment on table {} is {}").format(relation, sql.Literal(
        "Uplift of the win-back campaigns against lost clients nobody contacted (docs/metrics.md, "
        "'Uplift against a baseline'); written by winback.analytics.campaign_uplift.")))
    for name, (_, comment) in COLUMNS.items():
        conn.execute(sql.SQL("comment on column {}.{} is {}").format(relation, sql.Identifier(name),
                                                                     sql.Literal(comment)))
    if not table.empty:
        with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(
                relation, sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))) as copy:
            for record in table.itertuples(index=False):
                copy.write_row([None if pd.isna(value) else value for value in record])
    conn.execute(sql.SQL("grant select on {} to winback_bi_reader").format(relation))


def refresh(dsn: str) -> int:
    """Pool the cells the last dbt build left and store the uplift; the number of rows stored."""
    from winback import warehouse

    with warehouse.connect(dsn) as conn, conn.transaction():
        table = uplift_table(read_cells(conn))
        store(conn, table)
    log.info("campaign uplift: %s rows in %s", len(table), ".".join(UPLIFT_RELATION))
    return len(table)
