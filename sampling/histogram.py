"""The perplexity histogram's bins: log10-spaced from 1 to 1e8, the same in every per-task file,
in ``stats.json`` and in the plot, so per-task histograms add up bin by bin."""

from __future__ import annotations

import bisect
import itertools
import math

HIST_LO, HIST_HI, HIST_BINS = 0.0, 8.0, 800


def bin_index(pp: float) -> int:
    """The bin of a perplexity; values outside [1, 1e8) go to the first or last bin."""
    if pp <= 0:
        return 0
    return int(min(HIST_BINS - 1, max(0, (math.log10(pp) - HIST_LO) / (HIST_HI - HIST_LO) * HIST_BINS)))


def bin_edges():
    import numpy as np  # for the plot only: `bench sample score` starts without numpy

    return 10.0 ** np.linspace(HIST_LO, HIST_HI, HIST_BINS + 1)


def hist_quantile(hist, q: float) -> float | None:
    """Approximate quantile from a log-binned histogram (bin centre in log space)."""
    cumulative = list(itertools.accumulate(hist))
    if not cumulative or cumulative[-1] == 0:
        return None
    i = bisect.bisect_left(cumulative, q * cumulative[-1])
    lo = HIST_LO + (HIST_HI - HIST_LO) * i / HIST_BINS
    return float(10 ** (lo + (HIST_HI - HIST_LO) / HIST_BINS / 2))
