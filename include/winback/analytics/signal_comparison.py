"""Which early-warning signal warns better: the client's own rhythm, or BG/NBD's probability alive?

The early-warning list (``marts.at_risk_clients``) flags a client by its own buying rhythm
(overdue) and its revenue trend (declining). The second candidate is the probability that
the client is still "alive" from the BG/NBD model (:mod:`winback.analytics.bgnbd`). Both are
judged on the same clients and the same losses: the backtest's per-client judgement
(``intermediate.int_early_warning_backtest_clients``): for every quarter whose horizon has
ended, the clients as they stood on the eve of the quarter, from the data up to that day,
and whether the contract's lost rule finds them lost in the horizon.

For each quarter the BG/NBD model is fitted on every client with a purchase day up to the
eve (purchase *days*, times in weeks), and the active clients with the lowest probability
alive are flagged, **as many as the rhythm rules flagged**: two lists of one length, so
precision and recall compare like with like. Ties in the probability go to the smaller
client id. ``winback compare-signals`` prints the comparison; docs/early-warning-signals.md
records it on the demo data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from winback.analytics import bgnbd

# Columns of intermediate.int_early_warning_backtest_clients read here.
_QUERY = """
    select quarter_start, client_id, first_purchase_date, last_purchase_date, purchase_days,
           is_active, is_flagged, is_lost, revenue_12m
    from intermediate.int_early_warning_backtest_clients
    order by quarter_start, client_id
"""


@dataclass(frozen=True)
class SignalFigures:
    flagged: int
    flagged_lost: int
    flagged_lost_revenue: Decimal

    def precision(self) -> float | None:
        return self.flagged_lost / self.flagged if self.flagged else None


@dataclass(frozen=True)
class QuarterComparison:
    quarter_start: dt.date
    active: int
    lost: int
    lost_revenue: Decimal
    rhythm: SignalFigures
    bgnbd: SignalFigures | None      # None when the model could not be fitted (``note`` says why)
    note: str = ""

    def recall(self, figures: SignalFigures | None) -> float | None:
        return figures.flagged_lost / self.lost if figures is not None and self.lost else None

    def revenue_share(self, figures: SignalFigures | None) -> float | None:
        if figures is None or not self.lost_revenue:
            return None
        return float(figures.flagged_lost_revenue / self.lost_revenue)


def _figures(flags: np.ndarray, lost: np.ndarray, revenue: list[Decimal]) -> SignalFigures:
    caught = flags & lost
    return SignalFigures(flagged=int(flags.sum()), flagged_lost=int(caught.sum()),
                         flagged_lost_revenue=sum((r for r, c in zip(revenue, caught, strict=True) if c), Decimal(0)))


def compare_quarter(quarter_start: dt.date, rows: list[dict[str, Any]]) -> QuarterComparison:
    """Both signals on one quarter's clients (rows of int_early_warning_backtest_clients)."""
    eve = quarter_start - dt.timedelta(days=1)
    active = np.array([bool(r["is_active"]) for r in rows], dtype=bool)
    lost = np.array([bool(r["is_lost"]) for r in rows], dtype=bool) & active
    rhythm = np.array([bool(r["is_flagged"]) for r in rows], dtype=bool) & active
    revenue = [Decimal(r["revenue_12m"] or 0) for r in rows]
    lost_revenue = sum((rev for rev, is_lost in zip(revenue, lost, strict=True) if is_lost), Decimal(0))
    base = dict(quarter_start=quarter_start, active=int(active.sum()), lost=int(lost.sum()),
                lost_revenue=lost_revenue, rhythm=_figures(rhythm, lost, revenue))
    # BG/NBD's summary per client: repeat purchase days, recency and age in weeks.
    frequency = np.array([r["purchase_days"] - 1 for r in rows], dtype=float)
    recency = np.array([(r["last_purchase_date"] - r["first_purchase_date"]).days / 7 for r in rows])
    age = np.array([(eve - r["first_purchase_date"]).days / 7 for r in rows])
    try:
        params = bgnbd.fit(frequency, recency, age)
    except (ValueError, RuntimeError) as exc:
        return QuarterComparison(**base, bgnbd=None, note=f"BG/NBD not fitted: {exc}")
    alive = bgnbd.probability_alive(params, frequency, recency, age)
    # The active clients least likely alive, as many as the rhythm rules flagged.
    order = sorted(np.flatnonzero(active), key=lambda i: (alive[i], rows[i]["client_id"]))
    flags = np.zeros(len(rows), dtype=bool)
    flags[order[:int(rhythm.sum())]] = True
    return QuarterComparison(**base, bgnbd=_figures(flags, lost, revenue),
                             note=f"r={params.r:.3g} alpha={params.alpha:.3g} a={params.a:.3g} b={params.b:.3g}")


def compare(conn) -> list[QuarterComparison]:
    """Both signals for every judged quarter of the warehouse (built by the quarterly DAG)."""
    by_quarter: dict[dt.date, list[dict[str, Any]]] = {}
    with conn.cursor() as cur:
        cur.execute(_QUERY)
        names = [c.name for c in cur.description]
        for values in cur:
            row = dict(zip(names, values, strict=True))
            by_quarter.setdefault(row["quarter_start"], []).append(row)
    return [compare_quarter(quarter, rows) for quarter, rows in sorted(by_quarter.items())]


def pooled(results: list[QuarterComparison], signal: str) -> dict[str, float | None]:
    """Precision, recall and revenue share over all quarters the BG/NBD model was fitted for
    (the same quarters for both signals)."""
    fitted = [q for q in results if q.bgnbd is not None]
    figures = [getattr(q, signal) for q in fitted]
    flagged = sum(f.flagged for f in figures)
    caught = sum(f.flagged_lost for f in figures)
    lost = sum(q.lost for q in fitted)
    lost_revenue = sum((q.lost_revenue for q in fitted), Decimal(0))
    caught_revenue = sum((f.flagged_lost_revenue for f in figures), Decimal(0))
    return {"quarters": len(fitted), "precision": caught / flagged if flagged else None,
            "recall": caught / lost if lost else None,
            "revenue_share": float(caught_revenue / lost_revenue) if lost_revenue else None}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def format_table(results: list[QuarterComparison]) -> str:
    """The comparison as text: one line per quarter, then the pooled figures and the verdict."""
    lines = [f"{'quarter':10} {'active':>7} {'lost':>5} {'flagged':>8} | {'rhythm: precision':>17} {'recall':>7} "
             f"{'revenue':>8} | {'BG/NBD: precision':>17} {'recall':>7} {'revenue':>8}"]
    for q in results:
        bg = q.bgnbd
        lines.append(
            f"{q.quarter_start!s:10} {q.active:>7} {q.lost:>5} {q.rhythm.flagged:>8} | "
            f"{_pct(q.rhythm.precision()):>17} {_pct(q.recall(q.rhythm)):>7} {_pct(q.revenue_share(q.rhythm)):>8} | "
            f"{_pct(bg.precision() if bg else None):>17} {_pct(q.recall(bg)):>7} {_pct(q.revenue_share(bg)):>8}"
            + ("" if bg else f"  ({q.note})"))
    rhythm, bg = pooled(results, "rhythm"), pooled(results, "bgnbd")
    lines.append(f"pooled over {rhythm['quarters']} quarters: rhythm precision {_pct(rhythm['precision'])}, "
                 f"recall {_pct(rhythm['recall'])}, lost revenue flagged {_pct(rhythm['revenue_share'])}; "
                 f"BG/NBD precision {_pct(bg['precision'])}, recall {_pct(bg['recall'])}, "
                 f"lost revenue flagged {_pct(bg['revenue_share'])}")
    return "\n".join(lines)
