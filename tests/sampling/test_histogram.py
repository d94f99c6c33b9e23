"""The histogram bins: the sampler's bin of a perplexity, the plot's edges and the stats'
quantiles must describe the same bins."""

from __future__ import annotations

import numpy as np

from sampling.histogram import HIST_BINS, bin_edges, bin_index, hist_quantile


def test_bin_index_agrees_with_the_edges():
    edges = bin_edges()
    assert len(edges) == HIST_BINS + 1 and edges[0] == 1.0 and np.isclose(edges[-1], 1e8)
    rng = np.random.default_rng(0)
    for pp in 10 ** rng.uniform(0.001, 7.999, 2000):
        b = bin_index(float(pp))
        assert edges[b] <= pp * (1 + 1e-12) and pp <= edges[b + 1] * (1 + 1e-12)
    # out of range: clamped to the first and last bins, never an index error
    assert bin_index(0.0) == bin_index(-3.0) == bin_index(0.5) == 0
    assert bin_index(1e12) == HIST_BINS - 1


def test_hist_quantile_returns_the_bin_centre():
    hist = [0] * HIST_BINS
    for pp in (150.0, 300.0, 300.0, 5000.0):
        hist[bin_index(pp)] += 1
    median = hist_quantile(hist, 0.5)
    lo, hi = bin_edges()[bin_index(300.0)], bin_edges()[bin_index(300.0) + 1]
    assert lo < median < hi and np.isclose(median, np.sqrt(lo * hi))  # the centre on the log axis
    assert hist_quantile([0] * HIST_BINS, 0.5) is None
