"""The Multi-Bootstrap: is arm B better than arm A when the pre-trained model is the unit?

Sellam et al., "The MultiBERTs: BERT Reproductions for Robustness Analysis" (ICLR 2022), reference
implementation google-research/language ``language/multiberts/multibootstrap.py``. A sampling
strategy changes the pre-trained model, so a test that holds each checkpoint fixed (a paired
bootstrap over test examples, or Welch over fine-tuning seeds) never sees the variance a strategy
comparison must beat. Each bootstrap draw here

1. resamples pre-training seeds with replacement -- the same seed ids for both arms when they
   share them (paired; the arms then differ only by the data), independently otherwise;
2. resamples evaluation examples with replacement, one index draw shared by every arm;
3. scores each drawn pre-trained model as the mean over its fine-tuning seeds (several fine-tuning
   runs of one checkpoint are not independent replicates of the arm);
4. averages over the drawn pre-training seeds.

The input is the per-example *sufficient statistics* of each run (``(n_examples, k)`` arrays that
sum over examples: correct/total, tp/pred/gold for entity F1, summed loss/tokens for a per-domain
MLM loss) plus a ``metric`` that maps summed statistics to a score. A resample of examples is then
a multinomial count vector, and a run's resampled scores for all draws are one matrix product.

With one pre-training seed in an arm nothing about pre-training variance can be said: the result
says so (``fixed checkpoints``) and is never flagged significant.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

# Quantiles of the standard normal for the minimum detectable difference at alpha = 0.05
# (two-sided) and 80% power: MDD = (z_0.975 + z_0.80) * SE(delta) = 2.80 * SE.
Z_ALPHA, Z_POWER = 1.959964, 0.841621
FIXED = "fixed checkpoints: pre-training variance not measured"

Metric = Callable[[np.ndarray], np.ndarray]
# An arm: pre-training seed id -> per-example statistics of each fine-tuning run of that model.
ArmRuns = Mapping[object, Sequence[np.ndarray]]


@dataclass
class MultiBootstrapResult:
    delta: float  # observed score(B) - score(A), no resampling
    ci_low: float  # 95% percentile interval of the bootstrap deltas
    ci_high: float
    p: float  # two-sided bootstrap p-value (NaN when pre-training variance is not measured)
    se: float  # std of the bootstrap deltas
    mdd: float  # minimum detectable difference, 80% power at alpha 0.05: 2.80 * se
    seeds_a: int
    seeds_b: int
    paired: bool
    nboot: int
    note: str = ""

    @property
    def replicated(self) -> bool:
        return self.seeds_a >= 2 and self.seeds_b >= 2

    def significant(self, alpha: float = 0.05, p: float | None = None) -> bool:
        """Only a replicated comparison can be significant (``p``: an adjusted p-value)."""
        p = self.p if p is None else p
        return self.replicated and not math.isnan(p) and p < alpha

    def to_dict(self) -> dict:
        return asdict(self)


def _check(arm: ArmRuns, name: str, n: int | None) -> int:
    if not arm:
        raise ValueError(f"arm {name} has no runs")
    for seed, runs in arm.items():
        if not runs:
            raise ValueError(f"arm {name}, pre-training seed {seed!r}: no fine-tuning runs")
        for stats in runs:
            if stats.ndim != 2:
                raise ValueError(f"arm {name}, seed {seed!r}: statistics must be (n_examples, k)")
            if n is None:
                n = stats.shape[0]
            elif stats.shape[0] != n:
                raise ValueError(f"arm {name}, seed {seed!r}: {stats.shape[0]} examples, expected {n} "
                                 "(every run must be scored on the same examples)")
    return n


def _per_seed_scores(arm: ArmRuns, seeds: list, counts: np.ndarray | None, metric: Metric) -> np.ndarray:
    """(n_seeds, n_draws) scores: each pre-trained model's mean over its fine-tuning runs, on each
    resample of examples (``counts``: (n_draws, n_examples)), or on all examples once."""
    rows = []
    for seed in seeds:
        if counts is None:
            scores = [metric(np.asarray(s, dtype=np.float64).sum(axis=0)[None]) for s in arm[seed]]
        else:
            scores = [metric(counts @ np.asarray(s, dtype=np.float64)) for s in arm[seed]]
        rows.append(np.mean(scores, axis=0))
    return np.asarray(rows)


def multibootstrap(a: ArmRuns, b: ArmRuns, metric: Metric, *, nboot: int = 1000, seed: int = 0,
                   paired: bool | None = None, sample_examples: bool = True) -> MultiBootstrapResult:
    """Compare arm ``b`` against arm ``a`` (Δ = B − A). ``paired=None`` pairs the seeds when both
    arms have exactly the same seed ids."""
    if nboot < 1:
        raise ValueError("nboot must be >= 1")
    n = _check(b, "B", _check(a, "A", None))
    seeds_a, seeds_b = sorted(a, key=str), sorted(b, key=str)
    if paired is None:
        paired = set(seeds_a) == set(seeds_b)
    if paired and set(seeds_a) != set(seeds_b):
        raise ValueError(f"paired seeds need the same seed ids: A has {seeds_a}, B has {seeds_b}")
    rng = np.random.default_rng(seed)

    observed = float(_per_seed_scores(b, seeds_b, None, metric).mean() - _per_seed_scores(a, seeds_a, None, metric).mean())
    # one example draw shared by both arms (the same test items for A and B in every resample)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=nboot).astype(np.float64) if sample_examples else None
    sa = _per_seed_scores(a, seeds_a, counts, metric)
    sb = _per_seed_scores(b, seeds_b, counts, metric)
    if counts is None:
        sa, sb = np.repeat(sa, nboot, axis=1), np.repeat(sb, nboot, axis=1)
    # pre-training seeds drawn with replacement; the same draw for both arms when paired
    ia = rng.integers(0, len(seeds_a), size=(nboot, len(seeds_a)))
    ib = ia if paired else rng.integers(0, len(seeds_b), size=(nboot, len(seeds_b)))
    draws = np.arange(nboot)[:, None]
    deltas = sb[ib, draws].mean(axis=1) - sa[ia, draws].mean(axis=1)

    se = float(deltas.std(ddof=1)) if nboot > 1 else math.nan
    low, high = (float(x) for x in np.percentile(deltas, [2.5, 97.5]))
    replicated = len(seeds_a) >= 2 and len(seeds_b) >= 2
    if replicated:
        # two-sided: twice the share of resampled deltas on the far side of zero, never below 1/nboot
        p = float(min(1.0, max(2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0)), 1.0 / nboot)))
        note = ""
    else:
        p, note = math.nan, FIXED
    return MultiBootstrapResult(delta=observed, ci_low=low, ci_high=high, p=p, se=se,
                                mdd=(Z_ALPHA + Z_POWER) * se if replicated else math.nan,
                                seeds_a=len(seeds_a), seeds_b=len(seeds_b), paired=bool(paired), nboot=nboot, note=note)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN and does not count as a test): controls the
    family-wise error rate over all the comparisons of one study."""
    valid = [(p, i) for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(valid)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (m - rank) * p))  # monotone: never below an earlier one
        adjusted[i] = running
    return adjusted


def snr(arm_seed_scores: Mapping[str, Sequence[float]]) -> float:
    """Signal-to-noise of a task across arms (DataDecide, FineTasks): the std of the arm means over
    the pooled within-arm std across pre-training seeds. Near or below 1, the task cannot tell the
    arms apart at this scale. NaN without two arms or without replicated seeds."""
    arms = {k: np.asarray(v, dtype=float) for k, v in arm_seed_scores.items() if len(v)}
    if len(arms) < 2:
        return math.nan
    means = np.array([v.mean() for v in arms.values()])
    dof = sum(len(v) - 1 for v in arms.values())
    if dof < 1:
        return math.nan
    pooled = math.sqrt(sum(((v - v.mean()) ** 2).sum() for v in arms.values()) / dof)
    if pooled == 0:
        return math.inf if means.std(ddof=1) > 0 else math.nan
    return float(means.std(ddof=1) / pooled)


def mean_metric(column: int = 0, total: int = 1) -> Metric:
    """A metric that is a ratio of two summed statistics (accuracy: correct / total; a per-token
    loss: summed loss / tokens)."""

    def metric(stats: np.ndarray) -> np.ndarray:
        return stats[..., column] / np.maximum(stats[..., total], 1e-12)

    return metric
