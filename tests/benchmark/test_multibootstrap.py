"""The Multi-Bootstrap on synthetic arms whose truth is known: calibrated under the null with real
pre-training-seed variance, powerful on a consistent gap, silent with one pre-training seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.multibootstrap import FIXED, holm, mean_metric, multibootstrap, snr

ACCURACY = mean_metric(0, 1)


def _arm(rng, mu, seed_sd, seeds, difficulty, finetune=2):
    """Per-example correctness of each fine-tuning run: the pre-trained model's quality is
    ``mu + N(0, seed_sd)`` (what a pre-training seed changes), fine-tuning adds a little noise."""
    arm = {}
    for s in range(seeds):
        quality = mu + rng.normal(0, seed_sd)
        runs = []
        for _ in range(finetune):
            p = np.clip(difficulty + quality + rng.normal(0, 0.005), 0, 1)
            correct = (rng.random(len(difficulty)) < p).astype(float)
            runs.append(np.stack([correct, np.ones_like(correct)], axis=1))
        arm[s] = runs
    return arm


def test_equal_arms_with_large_seed_variance_are_rarely_called_different():
    rng = np.random.default_rng(0)
    repeats, hits = 200, 0
    for r in range(repeats):
        difficulty = rng.uniform(0.4, 0.95, 400)  # the same test items for both arms
        a = _arm(rng, 0.0, 0.03, 5, difficulty)
        b = _arm(rng, 0.0, 0.03, 5, difficulty)
        hits += multibootstrap(a, b, ACCURACY, nboot=300, seed=r).p < 0.05
    assert hits / repeats <= 0.10, f"false-positive rate {hits / repeats:.2f}"


def test_a_per_example_test_would_have_called_those_arms_different():
    """Why the replication unit matters: on the same kind of null arms, resampling only examples
    (each model held fixed) flags most pairs, because a seed's quality shift looks like signal."""
    rng = np.random.default_rng(1)
    hits = 0
    for r in range(40):
        difficulty = rng.uniform(0.4, 0.95, 400)
        a = _arm(rng, 0.0, 0.03, 5, difficulty)
        b = _arm(rng, 0.0, 0.03, 5, difficulty)
        res = multibootstrap({0: a[0]}, {0: b[0]}, ACCURACY, nboot=300, seed=r)
        hits += not (res.ci_low <= 0 <= res.ci_high)  # the example-only interval excludes zero
    assert hits / 40 > 0.3


def test_a_consistent_gap_larger_than_the_seed_noise_is_found():
    rng = np.random.default_rng(2)
    difficulty = rng.uniform(0.4, 0.9, 400)
    a = _arm(rng, 0.0, 0.01, 3, difficulty)
    b = _arm(rng, 0.08, 0.01, 3, difficulty)
    res = multibootstrap(a, b, ACCURACY, nboot=1000)
    assert res.p < 0.05 and res.significant()
    assert res.ci_low > 0 and 0.05 < res.delta < 0.11
    assert res.paired and res.seeds_a == res.seeds_b == 3 and res.nboot == 1000
    assert res.mdd == pytest.approx(2.80 * res.se, rel=1e-3) and res.mdd < res.delta


def test_one_pretraining_seed_flags_nothing():
    rng = np.random.default_rng(3)
    difficulty = rng.uniform(0.4, 0.9, 400)
    a = _arm(rng, 0.0, 0.01, 1, difficulty)
    b = _arm(rng, 0.3, 0.01, 1, difficulty)  # a huge gap, but one model per arm
    res = multibootstrap(a, b, ACCURACY, nboot=200)
    assert math.isnan(res.p) and not res.significant() and res.note == FIXED
    assert res.delta > 0.2  # the difference itself is still reported


def test_unpaired_seeds_and_bad_input():
    rng = np.random.default_rng(4)
    difficulty = rng.uniform(0.4, 0.9, 100)
    a = _arm(rng, 0.0, 0.01, 2, difficulty)
    b = {k + 10: v for k, v in _arm(rng, 0.0, 0.01, 3, difficulty).items()}
    assert not multibootstrap(a, b, ACCURACY, nboot=50).paired
    with pytest.raises(ValueError, match="same seed ids"):
        multibootstrap(a, b, ACCURACY, nboot=50, paired=True)
    short = {0: [np.ones((99, 2))], 1: [np.ones((99, 2))]}
    with pytest.raises(ValueError, match="99 examples, expected 100"):
        multibootstrap(a, short, ACCURACY, nboot=50)


def test_holm_adjusts_monotonically_and_skips_nan():
    adjusted = holm([0.01, 0.04, math.nan, 0.03, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 with m = 4: 0.04, 0.09, max(0.09, 0.08), max(.., 0.5)
    assert adjusted[0] == pytest.approx(0.04)
    assert adjusted[3] == pytest.approx(0.09)
    assert adjusted[1] == pytest.approx(0.09)
    assert adjusted[4] == pytest.approx(0.5)
    assert math.isnan(adjusted[2])


def test_snr_separates_signal_from_seed_noise():
    assert snr({"a": [1.0, 1.1, 0.9], "b": [3.0, 3.1, 2.9]}) > 10
    assert snr({"a": [1.0, 2.0, 0.0], "b": [1.1, 2.1, 0.1]}) < 0.2
    assert math.isnan(snr({"a": [1.0], "b": [2.0]}))
