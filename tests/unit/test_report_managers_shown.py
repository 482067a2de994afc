"""The report's per-manager tables stay printable for a sales force of any size."""

from __future__ import annotations

from winback.report.data import MANAGERS_SHOWN
from winback.report.render import managers_shown


def _managers(n: int) -> list[dict]:
    return [{"dimension": "manager", "manager_id": f"M{i:04d}", "clients": i} for i in range(n)]


def test_a_small_sales_force_is_printed_whole_in_its_order():
    rows = _managers(MANAGERS_SHOWN)[::-1]
    assert managers_shown(rows, lambda row: -row["clients"]) == (rows, 0)


def test_a_large_one_prints_the_most_relevant_managers_and_counts_the_others():
    rows = _managers(MANAGERS_SHOWN + 7)
    shown, more = managers_shown(rows, lambda row: -row["clients"])
    assert more == 7
    # the 25 largest books, in the table's own order (here by id)
    assert [row["clients"] for row in shown] == list(range(7, MANAGERS_SHOWN + 7))
    # without a relevance order: the table's first rows (its query puts the ones to look at first)
    assert managers_shown(rows) == (rows[:MANAGERS_SHOWN], 7)


def test_the_company_row_is_always_kept_beside_the_managers():
    company = {"dimension": "overall", "manager_id": None, "clients": 0}
    shown, more = managers_shown([company, *_managers(MANAGERS_SHOWN + 1)], lambda row: -row["clients"],
                                 always=lambda row: row["dimension"] != "manager")
    assert shown[0] is company and len(shown) == MANAGERS_SHOWN + 1 and more == 1
