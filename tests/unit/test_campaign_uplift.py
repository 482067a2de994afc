"""The campaign uplift's pooling (winback.analytics.campaign_uplift), checked against the
fixed-effect meta-analysis written out here from its textbook definition."""

import math

import pandas as pd
import pytest

from winback.analytics.campaign_uplift import GROUPINGS, pool_cells, uplift_table

Z95 = 1.959963984540054


def wald(returned: float, n: float, comparison_returned: float, comparison_n: float) -> tuple[float, float]:
    p1, p2 = returned / n, comparison_returned / comparison_n
    return p1 - p2, p1 * (1 - p1) / n + p2 * (1 - p2) / comparison_n


def test_a_campaign_that_changes_nothing_has_zero_uplift_and_an_interval_around_zero():
    # 2 of 10 back against 4 of 20 nobody contacted; 3 of 6 against 5 of 10.
    pooled = pool_cells([10, 6], [2, 3], [20, 10], [4, 5])
    assert pooled.uplift == pytest.approx(0, abs=1e-12)
    assert pooled.ci_low < 0 < pooled.ci_high
    assert pooled.ci_low == pytest.approx(-pooled.ci_high)


def test_one_cell_is_the_difference_of_its_two_shares_with_the_wald_interval():
    effect, variance = wald(6, 20, 3, 30)
    pooled = pool_cells([20], [6], [30], [3])
    assert pooled.uplift == pytest.approx(0.2)
    assert pooled.ci_low == pytest.approx(effect - Z95 * math.sqrt(variance))
    assert pooled.ci_high == pytest.approx(effect + Z95 * math.sqrt(variance))


def test_cells_are_pooled_by_inverse_variance():
    cells = [(20, 6, 30, 3), (50, 20, 40, 10), (8, 1, 12, 2)]
    effects = [wald(r, n, cr, cn) for n, r, cn, cr in cells]
    weights = [1 / v for _, v in effects]
    expected = sum(w * e for w, (e, _) in zip(weights, effects, strict=True)) / sum(weights)
    pooled = pool_cells(*zip(*cells, strict=True))
    assert pooled.uplift == pytest.approx(expected)
    assert pooled.ci_high - pooled.ci_low == pytest.approx(2 * Z95 / math.sqrt(sum(weights)))


def test_a_cell_without_variance_keeps_its_difference_and_borrows_a_corrected_variance():
    # The second cell: nobody came back on either side (0 of 5, 0 of 10): a difference of 0,
    # weighted by the variance of the continuity-corrected shares 0.5 / 6 and 0.5 / 11.
    ok_effect, ok_variance = wald(6, 20, 3, 30)
    _, corrected_variance = wald(0.5, 6, 0.5, 11)
    w1, w2 = 1 / ok_variance, 1 / corrected_variance
    pooled = pool_cells([20, 5], [6, 0], [30, 10], [3, 0])
    assert pooled.uplift == pytest.approx(w1 * ok_effect / (w1 + w2))
    alone = pool_cells([1], [0], [4], [0])
    assert alone.uplift == 0 and alone.ci_low < 0 < alone.ci_high


def test_one_client_who_came_back_does_not_outweigh_the_other_cells():
    # 1 of 1 targeted back against 1 of 65: observed +0.98, but its variance is the corrected
    # one (1.5 / 2 and 1.5 / 66), not the near-zero one of the raw shares.
    big_effect, big_variance = wald(30, 100, 28, 100)
    _, corrected_variance = wald(1.5, 2, 1.5, 66)
    small_effect = 1 - 1 / 65
    w1, w2 = 1 / big_variance, 1 / corrected_variance
    pooled = pool_cells([100, 1], [30, 1], [100, 65], [28, 1])
    assert pooled.uplift == pytest.approx((w1 * big_effect + w2 * small_effect) / (w1 + w2))
    assert w2 < w1


def cells_frame() -> pd.DataFrame:
    return pd.DataFrame([
        # campaign, offer, quarter, class, month, treated, back, comparison, comparison back
        ("W1", "service", "2024-07-01", "A", "2024-08-01", 10, 6, 20, 4),
        ("W1", "none", "2024-07-01", "A", "2024-08-01", 10, 2, 20, 4),
        ("W2", "service", "2024-10-01", "B", "2024-11-01", 30, 9, 10, 1),
    ], columns=["campaign_id", "offer_type", "lost_quarter", "abc_class", "entry_month", "treated_episodes",
                "treated_returned", "comparison_episodes", "comparison_returned"])


def test_the_table_has_every_grouping_with_its_counts_and_baseline():
    table = uplift_table(cells_frame())
    assert list(table.grouping.unique()) == [name for name, _ in GROUPINGS]
    offers = table[table.grouping == "offer_type"].set_index("offer_type")
    assert offers.loc["none", "uplift"] == pytest.approx(0)         # 2/10 against 4/20
    assert not offers.loc["none", "is_significant"]
    service = offers.loc["service"]
    assert (service.cells, service.targeted_episodes, service.returned_episodes) == (2, 40, 15)
    assert service.return_rate == pytest.approx(15 / 40, abs=1e-4)
    # the baseline weighs each cell's comparison share by the targeted: (10 x 0.2 + 30 x 0.1) / 40
    assert service.baseline_return_rate == pytest.approx(0.125, abs=1e-4)
    assert service.uplift > 0 and service.is_significant
    segments = table[table.grouping == "offer_type_segment"]
    assert set(zip(segments.offer_type, segments.abc_class, strict=True)) == {
        ("none", "A"), ("service", "A"), ("service", "B")}
    campaigns = table[table.grouping == "campaign"].set_index("campaign_id")
    assert campaigns.loc["W1", "targeted_episodes"] == 20 and campaigns.offer_type.isna().all()


def test_no_cells_give_an_empty_table():
    assert uplift_table(cells_frame().iloc[0:0]).empty
