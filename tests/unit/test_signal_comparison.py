"""The signal comparison (winback.analytics.signal_comparison) on clients whose fate is known.

A population made here: clients buying on rhythms of 5 to 30 days since different starts,
some of whom stopped two months before the eve and are lost in the horizon. BG/NBD must
find the stopped ones (long silence after frequent buying), list exactly as many clients as
the rhythm rules flagged, and count hits and revenue as the rows say.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np

from winback.analytics import signal_comparison

QUARTER = dt.date(2024, 10, 1)
EVE = QUARTER - dt.timedelta(days=1)


def population(seed: int = 7) -> list[dict]:
    """Clients living the BG/NBD story in days: Poisson purchases at a client's own rate, and
    after each repeat purchase a client's own chance to stop for good. Those still active on
    the eve (quiet for at most 180 days) that have stopped are the ones lost in the horizon."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(600):
        mean_gap = float(rng.uniform(7, 45))
        dropout = float(rng.beta(1, 12))
        first = EVE - dt.timedelta(days=int(rng.integers(120, 1000)))
        days, stopped = [first], False
        while True:
            following = days[-1] + dt.timedelta(days=max(1, round(rng.exponential(mean_gap))))
            if following > EVE:
                break
            days.append(following)
            if rng.random() < dropout:
                stopped = True
                break
        active = (EVE - days[-1]).days <= 180
        rows.append({"quarter_start": QUARTER, "client_id": f"C{i:03d}", "first_purchase_date": first,
                     "last_purchase_date": days[-1], "purchase_days": len(days), "is_active": active,
                     # the rhythm rules here: every third active client, a list that knows nothing
                     "is_flagged": active and i % 3 == 0, "is_lost": active and stopped,
                     "revenue_12m": Decimal(100 + i)})
    return rows


def test_bgnbd_finds_the_stopped_clients_with_a_list_as_long_as_the_rhythm_rules():
    result = signal_comparison.compare_quarter(QUARTER, population())
    rows = population()
    result = signal_comparison.compare_quarter(QUARTER, rows)
    assert result.bgnbd is not None, result.note
    active = [r for r in rows if r["is_active"]]
    lost = [r for r in active if r["is_lost"]]
    flagged = [r for r in active if r["is_flagged"]]
    assert (result.active, result.lost, result.rhythm.flagged) == (len(active), len(lost), len(flagged))
    assert result.rhythm.flagged_lost == sum(1 for r in flagged if r["is_lost"])
    assert result.rhythm.flagged_lost_revenue == sum((r["revenue_12m"] for r in flagged if r["is_lost"]), Decimal(0))
    # BG/NBD lists as many, and catches far more of the stopped than a list that knows nothing
    assert result.bgnbd.flagged == len(flagged)
    assert result.bgnbd.flagged_lost >= 2 * result.rhythm.flagged_lost


def test_a_quarter_the_model_cannot_fit_is_reported_not_raised():
    rows = [{"quarter_start": QUARTER, "client_id": f"C{i}", "first_purchase_date": EVE - dt.timedelta(days=i),
             "last_purchase_date": EVE - dt.timedelta(days=i), "purchase_days": 1, "is_active": True,
             "is_flagged": i > 90, "is_lost": i > 100, "revenue_12m": Decimal(1)} for i in range(10, 150, 10)]
    result = signal_comparison.compare_quarter(QUARTER, rows)
    assert result.bgnbd is None and "BG/NBD not fitted" in result.note
    text = signal_comparison.format_table([result])
    assert "BG/NBD not fitted" in text and "pooled over 0 quarters" in text


def test_pooled_figures_sum_the_quarters():
    first = signal_comparison.compare_quarter(QUARTER, population(7))
    second = signal_comparison.compare_quarter(QUARTER, population(8))
    pooled = signal_comparison.pooled([first, second], "rhythm")
    assert pooled["quarters"] == 2
    assert pooled["precision"] == (first.rhythm.flagged_lost + second.rhythm.flagged_lost) / (
        first.rhythm.flagged + second.rhythm.flagged)
    assert pooled["recall"] == (first.rhythm.flagged_lost + second.rhythm.flagged_lost) / (first.lost + second.lost)
