"""The reference implementation of the metric contract, on tiny hand-made examples.

Every expected value below was worked out by hand from ``docs/metrics.md`` (dates with a
calendar: e.g. 2024-01-01 + 181 days = 2024-06-30, 2024 being a leap year), never copied
from the reference's own output. L = 180 days unless a test says otherwise.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal

import pandas as pd
import pytest
from reference import contract

D = dt.date
PARAMS = dict(contract.CONTRACT_DEFAULTS)  # the contract's own numbers, whatever dbt says


def sales(*lines: tuple) -> pd.DataFrame:
    """Lines as (client_id, 'YYYY-MM-DD', 'amount'[, status])."""
    rows = []
    for number, line in enumerate(lines):
        client, day, amount, *rest = line
        rows.append({
            "line_id": f"L{number}",
            "client_id": client,
            "order_date": D.fromisoformat(day),
            "net_amount": Decimal(amount),
            "status": rest[0] if rest else "completed",
            "channel": "direct",
        })
    return pd.DataFrame(rows, columns=["line_id", "client_id", "order_date", "net_amount", "status", "channel"])


def contacts(*items: tuple) -> pd.DataFrame:
    """Contacts as (client_id, 'YYYY-MM-DD'), each at noon UTC."""
    rows = [
        {"client_id": client, "contact_at": pd.Timestamp(f"{day} 12:00", tz="UTC"), "manager_id": "M1",
         "channel": "call", "loss_reason": None}
        for client, day in items
    ]
    return pd.DataFrame(rows, columns=["client_id", "contact_at", "manager_id", "channel", "loss_reason"])


def episodes_as_tuples(frame: pd.DataFrame) -> list[tuple]:
    return [
        (r.client_id, r.episode_number, r.last_purchase_date, r.lost_date, r.return_date,
         None if pd.isna(r.days_to_return) else int(r.days_to_return))
        for r in frame.itertuples(index=False)
    ]


def same(actual, expected) -> bool:
    """Equality where NaN equals NaN (null rates) and floats compare to 1e-12."""
    if isinstance(expected, float) and math.isnan(expected):
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    if isinstance(expected, float):
        return abs(float(actual) - expected) < 1e-12
    return actual == expected


# ----------------------------------------------------------------------------- purchase days
def test_purchase_days_ignore_cancelled_lines_non_positive_days_and_lines_after_d():
    lines = sales(
        ("c1", "2024-01-10", "100.00"), ("c1", "2024-01-10", "-100.00", "returned"),  # nets to 0: no
        ("c1", "2024-01-11", "50.00", "cancelled"),                                   # cancelled: no
        ("c1", "2024-01-12", "30.00"), ("c1", "2024-01-12", "-10.00", "returned"),    # nets to 20: yes
        ("c1", "2024-01-13", "5.00"), ("c1", "2024-01-13", "-5.01", "returned"),      # nets to -0.01: no
        ("c1", "2024-02-01", "5.00"),                                                 # after D: no
        ("c2", "2024-01-05", "-5.00", "returned"),                                    # only a return: no
        ("c3", "2024-01-20", "0.01"),                                                 # one cent: yes
    )
    result = contract.purchase_days(lines, D(2024, 1, 31))
    assert list(result.itertuples(index=False, name=None)) == [("c1", D(2024, 1, 12)), ("c3", D(2024, 1, 20))]


# ----------------------------------------------------------------------------- lost episodes
def test_purchase_on_day_l_plus_1_is_no_episode_but_one_day_later_is():
    lines = sales(
        ("a", "2024-01-01", "10"), ("a", "2024-06-30", "10"),  # next purchase on p + 181 = lost date: not lost
        ("b", "2024-01-01", "10"), ("b", "2024-07-01", "10"),  # next purchase on p + 182: lost one day
    )
    result = contract.lost_episodes(lines, D(2024, 7, 1), lost_after_days=180)
    assert episodes_as_tuples(result) == [("b", 1, D(2024, 1, 1), D(2024, 6, 30), D(2024, 7, 1), 1)]
    assert result["is_returned"].tolist() == [True]


def test_episode_starts_only_once_d_reaches_the_lost_date():
    lines = sales(("c", "2024-01-01", "10"))
    assert contract.lost_episodes(lines, D(2024, 6, 29)).empty  # 180 days after: not yet lost
    on_the_day = contract.lost_episodes(lines, D(2024, 6, 30))
    assert episodes_as_tuples(on_the_day) == [("c", 1, D(2024, 1, 1), D(2024, 6, 30), None, None)]
    assert on_the_day["is_returned"].tolist() == [False]


def test_two_episodes_for_one_client():
    lines = sales(
        ("c", "2023-01-10", "10"),  # lost 2023-07-10, returns 2023-12-01 (144 days)
        ("c", "2023-12-01", "10"),
        ("c", "2024-01-15", "10"),  # 45 days later: no episode in between; lost 2024-07-14, not returned
    )
    result = contract.lost_episodes(lines, D(2025, 3, 1))
    assert episodes_as_tuples(result) == [
        ("c", 1, D(2023, 1, 10), D(2023, 7, 10), D(2023, 12, 1), 144),
        ("c", 2, D(2024, 1, 15), D(2024, 7, 14), None, None),
    ]


def test_a_return_after_d_is_not_seen():
    lines = sales(("c", "2023-01-10", "10"), ("c", "2023-12-01", "10"))
    result = contract.lost_episodes(lines, D(2023, 11, 30))
    assert episodes_as_tuples(result) == [("c", 1, D(2023, 1, 10), D(2023, 7, 10), None, None)]


def test_a_day_netted_to_zero_by_a_return_does_not_end_an_episode():
    lines = sales(
        ("c", "2023-01-10", "10"),
        ("c", "2023-09-01", "10"), ("c", "2023-09-01", "-10", "returned"),  # not a purchase day
        ("c", "2023-10-01", "10", "cancelled"),                              # ignored
        ("c", "2023-11-01", "10"),                                           # the return: 114 days after 07-10
    )
    result = contract.lost_episodes(lines, D(2023, 12, 31))
    assert episodes_as_tuples(result) == [("c", 1, D(2023, 1, 10), D(2023, 7, 10), D(2023, 11, 1), 114)]


def test_lost_on_a_date_agrees_with_the_open_episodes():
    """Two contract sentences, one meaning: lost on X <=> an episode with lost_date <= X < return_date."""
    rng = random.Random(7)
    lines = []
    for client in ("a", "b", "c", "d"):
        day = D(2022, 1, 1) + dt.timedelta(days=rng.randrange(60))
        while day < D(2024, 12, 31):
            lines.append((client, day.isoformat(), str(rng.choice([10, 20, -5]))))
            day += dt.timedelta(days=rng.choice([3, 30, 179, 180, 181, 182, 250]))
    frame = sales(*lines)
    as_of = D(2024, 12, 31)
    ledger = contract.Ledger(frame, as_of)
    episodes = contract.lost_episodes(frame, as_of)
    assert len(episodes) > 3
    for offset in range(0, (as_of - D(2022, 1, 1)).days + 1, 3):
        day = D(2022, 1, 1) + dt.timedelta(days=offset)
        for client in ledger.clients:
            open_episode = any(
                e.lost_date <= day and (e.return_date is None or day < e.return_date)
                for e in episodes[episodes.client_id == client].itertuples()
            )
            assert ledger.is_lost_on(client, day, 180) == open_episode, (client, day)


# ----------------------------------------------------------------------------- quarterly KPIs
KPI_SALES = sales(
    ("A", "2023-01-15", "100.00"), ("A", "2023-02-10", "50.00"),  # lost 2023-08-10
    ("A", "2024-03-01", "200.00"),                                # return (204 days), lost again 2024-08-29
    ("B", "2023-03-31", "1000.00"), ("B", "2023-06-01", "500.00", "cancelled"),  # lost 2023-09-28
    ("C", "2024-04-02", "300.00"), ("C", "2024-05-01", "-50.00", "returned"),     # lost 2024-09-30
)
KPI_CONTACTS = contacts(
    ("A", "2023-08-09"),  # the day before A's lost date: outside the window
    ("A", "2023-09-10"),  # lost date + 31: outside
    ("B", "2023-10-28"),  # lost date + 30: inside
    ("C", "2024-09-30"),  # on the lost date: inside
    (None, "2024-09-30"),  # unmatched contact: no client
)
NAN = float("nan")
# quarter_start, active_start, new, lost, returned, pool_start, churn, winback,
# revenue_lost_ttm, revenue_recovered_90d, gross_margin_lost_ttm, gross_margin_recovered_90d,
# is_window_complete, median_days, contacted_share (no line has a cost: margin = revenue)
KPI_EXPECTED = [
    (D(2023, 1, 1), 0, 2, 0, 0, 0, NAN, NAN, Decimal("0"), Decimal("0"), Decimal("0"), Decimal("0"), True, NAN, NAN),
    (D(2023, 4, 1), 2, 0, 0, 0, 0, 0.0, NAN, Decimal("0"), Decimal("0"), Decimal("0"), Decimal("0"), True, NAN, NAN),
    (D(2023, 7, 1), 2, 0, 2, 0, 0, 1.0, 0.0, Decimal("1150.00"), Decimal("0"), Decimal("1150.00"), Decimal("0"), True, NAN, 0.5),
    (D(2023, 10, 1), 0, 0, 0, 0, 2, NAN, 0.0, Decimal("0"), Decimal("0"), Decimal("0"), Decimal("0"), True, NAN, NAN),
    (D(2024, 1, 1), 0, 0, 0, 1, 2, NAN, 0.5, Decimal("0"), Decimal("200.00"), Decimal("0"), Decimal("200.00"), True, 204.0, NAN),
    (D(2024, 4, 1), 1, 1, 0, 0, 1, 0.0, 0.0, Decimal("0"), Decimal("0"), Decimal("0"), Decimal("0"), True, NAN, NAN),
    (D(2024, 7, 1), 2, 0, 2, 0, 1, 1.0, 0.0, Decimal("450.00"), Decimal("0"), Decimal("450.00"), Decimal("0"), True, NAN, 0.5),
    (D(2024, 10, 1), 0, 0, 0, 0, 3, NAN, 0.0, Decimal("0"), Decimal("0"), Decimal("0"), Decimal("0"), True, NAN, NAN),
]


def assert_kpi_rows(result: pd.DataFrame, expected: list[tuple], as_of: dt.date) -> None:
    assert list(result.columns) == contract.KPI_COLUMNS
    assert len(result) == len(expected)
    for row, want in zip(result.itertuples(index=False, name=None), expected, strict=True):
        got = row[:-1]
        assert row[-1] == as_of
        for name, g, w in zip(contract.KPI_COLUMNS[:-1], got, want, strict=True):
            assert same(g, w), f"{want[0]} {name}: got {g!r}, expected {w!r}"


def test_quarterly_kpis_story_with_d_on_a_quarter_end():
    result = contract.quarterly_kpis(KPI_SALES, KPI_CONTACTS, D(2024, 12, 31), PARAMS)
    assert_kpi_rows(result, KPI_EXPECTED, D(2024, 12, 31))


def test_the_quarter_ending_the_day_after_d_is_not_closed():
    result = contract.quarterly_kpis(KPI_SALES, KPI_CONTACTS, D(2024, 12, 30), PARAMS)
    assert_kpi_rows(result, KPI_EXPECTED[:-1], D(2024, 12, 30))


def test_no_closed_quarter_gives_no_rows():
    result = contract.quarterly_kpis(sales(("A", "2024-01-15", "1")), None, D(2024, 3, 30), PARAMS)
    assert result.empty and list(result.columns) == contract.KPI_COLUMNS


WINDOW_SALES = sales(
    ("W", "2022-07-01", "1.00"),   # lost_date - 366: outside the 365-day window
    ("W", "2022-07-02", "2.00"),   # lost_date - 365: inside
    ("W", "2022-10-01", "4.00"),
    ("W", "2023-01-02", "8.00"),   # last purchase: lost 2023-07-02
    ("W", "2023-07-02", "-0.50", "returned"),  # a return on the lost date: after the 365-day window
    ("W", "2023-11-15", "40.00"),  # return, 136 days after the lost date
    ("W", "2023-12-20", "60.00"),
    ("W", "2024-02-12", "7.00"),   # return_date + 89: inside the 90 days
    ("W", "2024-02-13", "1000.00"),  # return_date + 90: outside
)


def kpi_row(result: pd.DataFrame, quarter: dt.date) -> dict:
    return result[result.quarter_start == quarter].iloc[0].to_dict()


def test_revenue_windows_include_both_ends_exactly():
    result = contract.quarterly_kpis(WINDOW_SALES, None, D(2024, 6, 30), PARAMS)
    assert result.quarter_start.tolist()[0] == D(2022, 7, 1) and result.quarter_start.tolist()[-1] == D(2024, 4, 1)
    lost_quarter = kpi_row(result, D(2023, 7, 1))
    assert lost_quarter["lost_clients"] == 1
    assert lost_quarter["revenue_lost_ttm"] == Decimal("14.00")
    assert lost_quarter["churn_rate"] == 1.0
    # No contact log delivered at all: whether the lost client was contacted is unknown (null).
    assert math.isnan(lost_quarter["lost_contacted_share"])
    with_a_log = kpi_row(contract.quarterly_kpis(WINDOW_SALES, contacts(("other", "2023-08-01")), D(2024, 6, 30),
                                                 PARAMS), D(2023, 7, 1))
    assert with_a_log["lost_contacted_share"] == 0.0  # a log, but no contact of this client: 0, not null
    return_quarter = kpi_row(result, D(2023, 10, 1))
    assert return_quarter["returned_clients"] == 1
    assert return_quarter["revenue_recovered_90d"] == Decimal("107.00")
    assert bool(return_quarter["is_window_complete"]) is True  # 2023-11-15 + 89 = 2024-02-12 <= D
    assert return_quarter["median_days_to_return"] == 136.0
    assert return_quarter["winback_rate"] == 1.0  # 1 / (pool 1 + lost 0)


def test_margin_lost_and_recovered_take_the_cost_off_and_count_a_line_without_cost_as_zero():
    frame = WINDOW_SALES.assign(cost_amount=[Decimal("0.50"), Decimal("1.00"), None, Decimal("3.00"),
                                             Decimal("-0.20"), Decimal("30.00"), Decimal("45.00"), None,
                                             Decimal("600.00")])
    result = contract.quarterly_kpis(frame, None, D(2024, 6, 30), PARAMS)
    # lost 2023-07-02: 2.00 - 1.00 + 4.00 - 0 + 8.00 - 3.00 (2022-07-01 is outside the window)
    assert kpi_row(result, D(2023, 7, 1))["gross_margin_lost_ttm"] == Decimal("10.00")
    # back 2023-11-15: 40 - 30 + 60 - 45 + 7 - 0 (2024-02-13 is outside the 90 days)
    assert kpi_row(result, D(2023, 10, 1))["gross_margin_recovered_90d"] == Decimal("32.00")


def test_recovered_revenue_uses_only_days_up_to_d_and_flags_the_open_window():
    result = contract.quarterly_kpis(WINDOW_SALES, None, D(2024, 1, 31), PARAMS)
    assert result.quarter_start.tolist()[-1] == D(2023, 10, 1)
    return_quarter = kpi_row(result, D(2023, 10, 1))
    assert return_quarter["revenue_recovered_90d"] == Decimal("100.00")  # 40 + 60; 2024-02-12 is after D
    assert not return_quarter["is_window_complete"]  # 2023-11-15 + 89 = 2024-02-12 > D


# ----------------------------------------------------------------------------- cohort return rates
COHORT_SALES = sales(
    # All five last buy on 2022-01-01, so all are lost on 2022-07-01.
    ("a", "2022-01-01", "10"), ("a", "2022-09-29", "10"),  # back after 90 days; lost again 2023-03-29
    ("b", "2022-01-01", "10"), ("b", "2022-09-30", "10"),  # back after 91 days; lost again 2023-03-30
    ("c", "2022-01-01", "10"), ("c", "2023-07-01", "10"),  # back after 365 days (on D)
    ("d", "2022-01-01", "10"), ("d", "2023-07-02", "10"),  # back after 366 days, but that is after D
    ("e", "2022-01-01", "10"),
)


def test_cohort_return_rates_count_returns_within_n_days_inclusive():
    result = contract.cohort_return_rates(COHORT_SALES, D(2023, 7, 1), PARAMS)
    rows = [tuple(r) for r in result.itertuples(index=False, name=None)]
    assert list(result.columns) == [
        "cohort_quarter", "dimension", "dimension_value", "lost_episodes",
        "returned_within_90", "returned_within_180", "returned_within_365",
        "return_rate_90", "return_rate_180", "return_rate_365",
        "window_closed_90", "window_closed_180", "window_closed_365",
    ]
    expected = [
        (D(2022, 7, 1), "overall", "all", 5, 1, 2, 3, 0.2, 0.4, 0.6, True, True, True),
        # a and b again, lost 2023-03-29 / 03-30: 03-30 + 90 = 06-28 <= D; + 180 > D.
        (D(2023, 1, 1), "overall", "all", 2, 0, 0, 0, 0.0, 0.0, 0.0, True, False, False),
    ]
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert all(same(g, w) for g, w in zip(got, want, strict=True)), (got, want)


def test_median_days_to_return_of_an_even_count_is_the_mean_of_the_middle_two():
    result = contract.quarterly_kpis(COHORT_SALES, None, D(2023, 7, 1), PARAMS)
    q3 = kpi_row(result, D(2022, 7, 1))
    assert q3["lost_clients"] == 5 and q3["returned_clients"] == 2  # a (90 days) and b (91 days)
    assert q3["median_days_to_return"] == 90.5
    assert q3["winback_rate"] == 0.4  # 2 / (0 + 5)
    assert q3["churn_rate"] == 1.0  # 5 / 5 active on 2022-06-30


# ----------------------------------------------------------------------------- ABC / XYZ
def abc_sales(scale: str) -> pd.DataFrame:
    k = Decimal(scale)
    return sales(
        ("x", "2024-01-10", str(70 * k)),
        ("q", "2024-02-10", str(10 * k)),  # ties with p; p comes first by client_id
        ("p", "2024-02-10", str(10 * k)),
        ("s", "2024-03-10", str(5 * k)), ("s", "2024-03-11", "100.00", "cancelled"),
        ("r", "2024-03-10", str(5 * k)),
        ("n", "2024-01-05", str(10 * k)), ("n", "2024-01-20", str(-10 * k), "returned"),  # window revenue 0
        ("m", "2024-03-01", str(-3 * k), "returned"),  # negative window revenue, still a row
        ("k", "2024-03-05", "50.00", "cancelled"),     # only cancelled: no row
        ("f", "2024-04-10", "50.00"),                  # after E (but <= D): no row at E
        ("late", "2024-04-20", "50.00"),               # after D
    )


@pytest.mark.parametrize("scale", ["1", "0.01"])  # 0.01: 0.70 + 0.10 is not 0.80 in binary floating point
def test_abc_ties_by_client_id_and_exact_boundaries(scale):
    result = contract.segments(abc_sales(scale), D(2024, 4, 15), PARAMS)
    k = Decimal(scale)
    got = {r.client_id: (r.quarter_end, r.window_revenue, r.abc_class, r.xyz_class, r.abc_xyz_class)
           for r in result.itertuples(index=False)}
    e = D(2024, 3, 31)
    # total 100k: x before 0 -> A; p before 0.70 -> A; q before exactly 0.80 -> B;
    # r before 0.90 -> B; s before exactly 0.95 -> C. Single-month revenue: CV = sqrt(11) -> Z.
    assert got == {
        "x": (e, 70 * k, "A", "Z", "AZ"),
        "p": (e, 10 * k, "A", "Z", "AZ"),
        "q": (e, 10 * k, "B", "Z", "BZ"),
        "r": (e, 5 * k, "B", "Z", "BZ"),
        "s": (e, 5 * k, "C", "Z", "CZ"),
        "n": (e, 0 * k, "N", "N", "N"),
        "m": (e, -3 * k, "N", "N", "N"),
    }
    assert len(result) == 7


def test_abc_classes_directly_at_the_boundaries():
    revenue = {"c3": Decimal("15"), "c1": Decimal("80"), "c2": Decimal("5")}
    # c1 before 0 -> A; c3 before exactly 0.80 -> B; c2 before exactly 0.95 -> C
    assert contract.abc_classes(revenue, 0.80, 0.95) == {"c1": "A", "c3": "B", "c2": "C"}


@pytest.mark.parametrize(
    ("monthly", "expected"),
    [
        ([100] * 12, "X"),            # CV 0
        ([30, 10] * 6, "X"),          # mean 20, sd 10: CV exactly 0.5
        ([31, 10] * 6, "Y"),          # CV 21/41 = 0.512
        ([10] * 8 + [0] * 4, "Y"),    # CV sqrt(2)/2 = 0.707
        ([10] * 6 + [0] * 6, "Y"),    # mean 5, sd 5: CV exactly 1.0
        ([10] * 5 + [0] * 7, "Z"),    # CV sqrt(7/5) = 1.18
        ([0] * 11 + [50], "Z"),       # CV sqrt(11)
    ],
)
def test_xyz_class_with_zero_months_and_exact_boundaries(monthly, expected):
    assert contract.xyz_class([Decimal(v) for v in monthly], 0.5, 1.0) == expected


def test_xyz_in_segments_counts_months_without_sales_as_zero():
    # E = 2024-03-31: window 2023-04-01 .. 2024-03-31, months April 2023 .. March 2024.
    months = [D(2023, 4, 1) + dt.timedelta(days=31 * i) for i in range(12)]
    months = [D(m.year, m.month, 15) for m in months]
    assert months[0] == D(2023, 4, 15) and months[-1] == D(2024, 3, 15)
    lines = [("before", "2023-03-15", "100")]  # outside the window of E: window revenue 0 there
    lines += [("flat", m.isoformat(), "100") for m in months]
    lines += [("alt", m.isoformat(), "30" if i % 2 == 0 else "10") for i, m in enumerate(months)]
    lines += [("half", m.isoformat(), "10") for m in months[:6]]  # six months of 10, six of 0: CV 1
    lines += [("once", "2023-12-24", "10")]
    lines += [("flat", "2024-04-15", "999")]  # after E
    result = contract.segments(sales(*lines), D(2024, 5, 1), PARAMS)
    at_e = result[result.quarter_end == D(2024, 3, 31)].set_index("client_id")
    assert at_e.loc["flat", "window_revenue"] == Decimal("1200")
    assert at_e.loc["flat", "xyz_class"] == "X"
    assert at_e.loc["alt", "xyz_class"] == "X"
    assert at_e.loc["half", "xyz_class"] == "Y"
    assert at_e.loc["once", "xyz_class"] == "Z"
    assert at_e.loc["before", "abc_xyz_class"] == "N" and at_e.loc["before", "window_revenue"] == 0
    # Quarters covered start with the quarter of the earliest purchase day (2023-03-15).
    assert sorted(set(result.quarter_end)) == [D(2023, 3, 31), D(2023, 6, 30), D(2023, 9, 30),
                                               D(2023, 12, 31), D(2024, 3, 31)]
    # At 2023-03-31 only "before" has a line; it is the only classed client: A, one month: Z.
    first = result[result.quarter_end == D(2023, 3, 31)]
    assert first[["client_id", "abc_xyz_class"]].values.tolist() == [["before", "AZ"]]


# ----------------------------------------------------------------------------- migrations
def test_migrations_count_clients_and_sum_window_revenue_per_cell():
    q1, q2 = D(2024, 3, 31), D(2024, 6, 30)
    rows = [
        ("u", q1, Decimal("100"), "A", "X", "AX"),
        ("w", q1, Decimal("50"), "A", "Y", "AY"),
        ("t", q1, Decimal("0"), "N", "N", "N"),
        ("u", q2, Decimal("80"), "B", "X", "BX"),
        ("v", q2, Decimal("90"), "A", "Z", "AZ"),  # new at q2: from N
        ("w", q2, Decimal("60"), "A", "Y", "AY"),
        ("t", q2, Decimal("5"), "C", "Z", "CZ"),
    ]
    segment_rows = pd.DataFrame(rows, columns=contract.SEGMENT_COLUMNS)
    result = contract.migrations(segment_rows)
    got = {(r.quarter_end, r.segmentation, r.from_class, r.to_class): (r.clients, r.window_revenue)
           for r in result.itertuples(index=False)}
    assert got == {
        (q1, "abc", "N", "A"): (2, Decimal("150")),
        (q1, "abc", "N", "N"): (1, Decimal("0")),
        (q1, "xyz", "N", "X"): (1, Decimal("100")),
        (q1, "xyz", "N", "Y"): (1, Decimal("50")),
        (q1, "xyz", "N", "N"): (1, Decimal("0")),
        (q1, "abc_xyz", "N", "AX"): (1, Decimal("100")),
        (q1, "abc_xyz", "N", "AY"): (1, Decimal("50")),
        (q1, "abc_xyz", "N", "N"): (1, Decimal("0")),
        (q2, "abc", "A", "B"): (1, Decimal("80")),
        (q2, "abc", "N", "A"): (1, Decimal("90")),
        (q2, "abc", "A", "A"): (1, Decimal("60")),
        (q2, "abc", "N", "C"): (1, Decimal("5")),
        (q2, "xyz", "X", "X"): (1, Decimal("80")),
        (q2, "xyz", "N", "Z"): (2, Decimal("95")),
        (q2, "xyz", "Y", "Y"): (1, Decimal("60")),
        (q2, "abc_xyz", "AX", "BX"): (1, Decimal("80")),
        (q2, "abc_xyz", "N", "AZ"): (1, Decimal("90")),
        (q2, "abc_xyz", "AY", "AY"): (1, Decimal("60")),
        (q2, "abc_xyz", "N", "CZ"): (1, Decimal("5")),
    }
    assert len(result) == 19


# ----------------------------------------------------------------------------- parameters
def test_parameters_default_to_the_contract_numbers():
    params = contract.default_params()
    for name in ("lost_after_days", "abc_a_share", "abc_b_share", "xyz_x_max_cv", "xyz_y_max_cv",
                 "return_windows_days", "revenue_lost_window_days", "revenue_recovered_window_days",
                 "contact_after_loss_days"):
        assert params[name] == contract.CONTRACT_DEFAULTS[name], name
    assert params["lost_after_days"] == 180 and params["abc_a_share"] == 0.80


def test_a_different_l_moves_the_lost_date():
    lines = sales(("c", "2024-01-01", "10"))
    result = contract.lost_episodes(lines, D(2024, 12, 31), lost_after_days=90)
    assert episodes_as_tuples(result) == [("c", 1, D(2024, 1, 1), D(2024, 4, 1), None, None)]  # + 91 days (leap February)
