"""Strategies: BERTIN's formulas, the boundary/None cases BERTIN crashed on, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sampling.strategies import (
    BERTIN_BOUNDARIES, GaussianStrategy, RandomStrategy, StepwiseStrategy, calibrate_factor,
    expected_fraction, make_strategy,
)

Q1, Q2, Q3 = BERTIN_BOUNDARIES


def test_stepwise_bertin_defaults_and_exact_boundaries():
    s = make_strategy("stepwise", factor=None)  # BERTIN crashed on factor=None
    assert s.factor == 1.5e5 and (s.q1, s.q2, s.q3) == BERTIN_BOUNDARIES
    # each boundary value belongs to the interval below it (BERTIN left pp == Q2 undefined)
    assert s.keep_probability(Q1) == pytest.approx(1.5e5 / Q1)
    assert s.keep_probability(Q2) == min(1, 1.5e5 / (Q2 - Q1))
    assert s.keep_probability(Q3) == pytest.approx(1.5e5 / (Q3 - Q2))
    assert s.keep_probability(Q3 * 1.0001) == pytest.approx(1.5e5 / (10 * Q3))
    assert s.keep_probability(1.0) == pytest.approx(1.5e5 / Q1)
    assert 0 < s.keep_probability(1e9) < s.keep_probability(Q3) < s.keep_probability(Q2) <= 1


def test_gaussian_formula_and_defaults():
    g = make_strategy("gaussian")
    assert (g.factor, g.width, g.m) == (0.78, 4.5, Q2)
    for pp in (1e5, Q2, 2e6):
        assert g.keep_probability(pp) == pytest.approx(min(1, 0.78 * math.exp(-(1 / 4.5) * ((pp - Q2) / Q2) ** 2)))
    assert g.keep_probability(Q2) == pytest.approx(0.78)  # peak at the median
    g2 = make_strategy("gaussian", boundaries=(100, 200, 400), factor=2.0, width=1.0)
    assert g2.m == 200 and g2.keep_probability(200.0) == 1.0  # capped at 1


def test_vectorized_equals_scalar_and_nan_is_never_kept():
    pps = np.array([1.0, Q1, (Q1 + Q2) / 2, Q2, Q3, 5e6, np.nan])
    for s in (RandomStrategy(0.3), StepwiseStrategy(), GaussianStrategy()):
        vec = s.keep_probability(pps)
        assert vec.shape == pps.shape
        assert [s.keep_probability(float(x)) for x in pps[:-1]] == pytest.approx(list(vec[:-1]))
        assert np.all((vec[:-1] >= 0) & (vec[:-1] <= 1))
    assert StepwiseStrategy().keep_probability(np.nan) == 0.0 and GaussianStrategy().keep_probability(np.nan) == 0.0


def test_make_strategy_errors():
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("perplexity")
    with pytest.raises(ValueError, match="Q1 <= Q2 <= Q3"):
        make_strategy("stepwise", boundaries=(3, 2, 1))
    with pytest.raises(ValueError, match="only applies to the gaussian"):
        make_strategy("stepwise", width=2)


@pytest.mark.parametrize("name", ["random", "stepwise", "gaussian"])
@pytest.mark.parametrize("target", [0.05, 0.3, 0.8])
def test_calibration_hits_target_on_real_perplexities(name, target, real_boundaries):
    s = make_strategy(name, boundaries=real_boundaries)
    sample = real_boundaries.sample()
    factor = calibrate_factor(s, sample, target)
    assert expected_fraction(s.with_factor(factor), sample) == pytest.approx(target, abs=1e-6)
    with pytest.raises(ValueError):
        calibrate_factor(s, sample, 0)


@pytest.fixture(scope="module")
def real_boundaries(web_slice, ccnet_scorer):
    from sampling.boundaries import estimate_boundaries

    return estimate_boundaries(web_slice(600), scorer=ccnet_scorer, n_docs=600, progress=False)
