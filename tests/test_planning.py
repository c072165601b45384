"""Exact agreement API, the planner, and exact == Monte Carlo on real data (issue 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import jaxbench
from conftest import shared_file
from jaxbench.planning import exact_agreement, exact_agreement_matrix, plan


@pytest.fixture(scope="module")
def mmlu():
    return jaxbench.load("mmlu-pro")


def _mdad_reference(matrix, size, threshold=0.8, rule="paper"):
    """Independent: per-pair exact agreement -> 0.5-point bins -> SPEC MDAD rule, in NumPy."""
    matrix, _ = jaxbench.data.apply_missing_policy(matrix, "drop_items")
    rows = exact_agreement(matrix, [size])
    bins = np.floor(np.abs(rows.difference.to_numpy()) / 0.5 + 1e-9).astype(int)
    curve = pd.Series(rows.agreement.to_numpy(np.float64)).groupby(bins).mean()
    reaching = curve.index[curve >= threshold - 1e-6]
    if rule == "paper":
        return None if len(reaching) == 0 else reaching[0] * 0.5
    failing = curve.index[curve < threshold - 1e-6]
    later = curve.index[curve.index > (failing.max() if len(failing) else -1)]
    return None if len(later) == 0 else later[0] * 0.5


def test_exact_agreement_table(mmlu):
    names = list(mmlu.models[:4])
    rows = exact_agreement(mmlu, [10, 1000], models=names)
    assert len(rows) == 6 * 2 and not rows.approximate.any()
    assert rows.agreement.between(0, 1).all()
    # More items never hurt a pair whose gap is clear.
    wide = rows.pivot_table(index=["model_a", "model_b"], columns="size", values="agreement")
    clear = rows.drop_duplicates(["model_a", "model_b"]).difference.abs().to_numpy() > 3
    assert (wide[1000].to_numpy()[clear] >= wide[10].to_numpy()[clear]).all()


@pytest.mark.parametrize("gap", [2.0, 5.0])
def test_planner_answer_is_minimal(mmlu, gap):
    answer = plan(mmlu, gap=gap)
    assert answer.size is not None and not answer.approximate
    assert answer.mdad <= gap
    assert _mdad_reference(mmlu, answer.size) <= gap
    below = _mdad_reference(mmlu, answer.size - 1)
    assert below is None or below > gap
    assert answer.curve.pairs.sum() == 29 * 28 // 2


def test_planner_monotone_rule_needs_at_least_as_many_items(mmlu):
    paper = plan(mmlu, gap=3.0)
    monotone = plan(mmlu, gap=3.0, rule="monotone")
    assert monotone.size >= paper.size
    assert _mdad_reference(mmlu, monotone.size, rule="monotone") <= 3.0


def test_planner_unreachable_and_graded():
    rng = np.random.default_rng(0)
    row = (rng.random(200) < 0.5).astype(np.float32)
    same = jaxbench.ResponseMatrix(np.tile(row, (3, 1)), models=["a", "b", "c"],
                                   items=[f"i{j}" for j in range(200)])
    assert plan(same, gap=1.0).size is None  # identical models: every estimate ties
    graded = jaxbench.ResponseMatrix(rng.random((5, 300)).astype(np.float32),
                                     models=list("abcde"), items=[f"i{j}" for j in range(300)])
    answer = plan(graded, gap=5.0)
    assert answer.approximate
    assert exact_agreement(graded, [20]).approximate.all()


def test_planner_validation(mmlu):
    for kwargs, message in [(dict(gap=-1), "gap"), (dict(threshold=0), "threshold"),
                            (dict(rule="odd"), "rule"), (dict(models=["x"]), "at least 2"),
                            (dict(missing="mask"), "complete data")]:
        with pytest.raises(ValueError, match=message):
            plan(mmlu, **kwargs)


def test_matrix_api_is_reexported_consistently():
    scores = np.array([[1, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 1]], float)
    assert np.allclose(np.asarray(exact_agreement_matrix(scores, [1, 4]).agreement),
                       [[0.5, 1.0], [0.5, 1.0], [0.25, 0.0]])


def _exact_inside_monte_carlo(matrix, num_targets):
    """The exact curve (same runs' splits) against the Monte Carlo curve and its intervals.

    With hundreds of bins and honest 95 % intervals, about 5 % of bins miss by chance, so
    "inside every interval" is checked two ways: (1) the share of bins inside the 95 % interval
    is consistent with 95 % coverage, and (2) every bin lies inside a simultaneous
    (Bonferroni) interval, MC ± z_{1 − 0.05/(2·bins)}·SE, with SE from the bootstrap interval
    and, where every resampled pair agreed (a zero-width interval), the binomial SE of the
    exact probability as a floor.
    """
    result = jaxbench.meta_evaluate(matrix, methods=["random"], sizes=(10, 50, 250), num_runs=2000,
                                    num_targets=num_targets, num_bootstrap=1000, seed=11)
    table = result.agreement
    keys = ["size", "reference", "bin"]
    monte_carlo = table[table.method == "random"]
    exact = table[table.method == "random/exact"][keys + ["agreement", "pairs"]]
    joined = monte_carlo.merge(exact, on=keys, suffixes=("", "_exact"), validate="one_to_one")
    assert (joined.pairs == joined.pairs_exact).all()  # same runs, same splits, same bins
    checked = joined[joined.pairs >= 200]
    assert len(checked) > 50
    inside = checked.agreement_exact.between(checked.ci_lower - 1e-6, checked.ci_upper + 1e-6)
    # (1) Coverage: at least 90 % of bins inside their 95 % interval (binomial slack). Bins
    # where every pair agreed in every run have a zero-width percentile interval; (2) covers them.
    spread = checked.ci_upper > checked.ci_lower
    assert spread.sum() > 50 and inside[spread].mean() >= 0.90, inside[spread].mean()
    # (2) Simultaneous: every bin within the Bonferroni-widened interval.
    z = scipy.stats.norm.ppf(1 - 0.05 / (2 * len(checked)))
    p = checked.agreement_exact.clip(0, 1)
    se = np.maximum((checked.ci_upper - checked.ci_lower) / 3.92, np.sqrt(p * (1 - p) / checked.pairs))
    outside = (checked.agreement - checked.agreement_exact).abs() > z * se + 1e-6
    assert not outside.any(), checked[outside][["agreement", "agreement_exact", "ci_lower", "ci_upper"]]
    # No bias overall: pair-weighted agreement within 0.005 for every size and reference.
    pooled = joined.assign(mc=joined.agreement * joined.pairs, ex=joined.agreement_exact * joined.pairs)
    pooled = pooled.groupby(["size", "reference"])[["mc", "ex", "pairs"]].sum()
    assert ((pooled.mc - pooled.ex).abs() / pooled.pairs).max() < 0.005


@pytest.mark.slow
def test_exact_curve_inside_monte_carlo_interval_mmlu_pro(mmlu):
    _exact_inside_monte_carlo(mmlu, num_targets=20)


@pytest.mark.slow
def test_exact_curve_inside_monte_carlo_interval_bfcl():
    _exact_inside_monte_carlo(jaxbench.read_matrix(shared_file("bfcl_v2_20240811.npz")), num_targets=30)
