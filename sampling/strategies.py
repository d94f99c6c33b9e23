"""Sampling strategies: the probability of keeping a document given its perplexity.

Each strategy is a small immutable class with a vectorized ``keep_probability(pp)`` (a float or a
numpy array in, the same shape out) and BERTIN's defaults. Whether a document is actually kept is
decided elsewhere (``steps.keep_uniform``) from a hash, so strategies are pure functions.

BERTIN's originals (``bertin-project/mc4-sampling``) left the probability undefined when the
perplexity equalled a boundary and crashed when ``factor`` was None; here every perplexity falls in
exactly one interval (``Q1 < pp <= Q2`` and so on) and ``factor=None`` means the default.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Sequence

import numpy as np

# BERTIN's boundaries on mC4-es with the edugp Wikipedia LM (raw mode); the defaults when none given.
BERTIN_BOUNDARIES = (536394.99320948, 662247.50212365, 919250.87225178)


@dataclasses.dataclass(frozen=True)
class Strategy:
    name: ClassVar[str] = "base"
    factor: float = 1.0

    def keep_probability(self, pp):
        raise NotImplementedError

    def with_factor(self, factor: float) -> "Strategy":
        return dataclasses.replace(self, factor=float(factor))

    def params(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class RandomStrategy(Strategy):
    """Keep every document with the same probability ``factor`` (BERTIN's baseline)."""

    name: ClassVar[str] = "random"
    factor: float = 0.5

    def keep_probability(self, pp):
        p = np.minimum(1.0, np.full(np.shape(pp), self.factor, dtype=float))
        return float(p) if np.ndim(pp) == 0 else p


@dataclasses.dataclass(frozen=True)
class StepwiseStrategy(Strategy):
    """BERTIN's stepwise: p = min(1, factor / r), r the width of the perplexity's quartile range.

    r = Q1 for pp <= Q1, Q2 - Q1 for Q1 < pp <= Q2, Q3 - Q2 for Q2 < pp <= Q3, 10 * Q3 above Q3:
    the narrow middle quartiles (typical documents) get the highest probability.
    """

    name: ClassVar[str] = "stepwise"
    factor: float = 1.5e5
    q1: float = BERTIN_BOUNDARIES[0]
    q2: float = BERTIN_BOUNDARIES[1]
    q3: float = BERTIN_BOUNDARIES[2]

    def keep_probability(self, pp):
        x = np.asarray(pp, dtype=float)
        r = np.select(
            [x <= self.q1, x <= self.q2, x <= self.q3],
            [self.q1, self.q2 - self.q1, self.q3 - self.q2],
            10.0 * self.q3,
        )
        with np.errstate(divide="ignore"):
            p = np.minimum(1.0, self.factor / r)
        p = np.where(np.isnan(x), 0.0, p)
        return float(p) if np.ndim(pp) == 0 else p


@dataclasses.dataclass(frozen=True)
class GaussianStrategy(Strategy):
    """BERTIN's gaussian: p = min(1, factor * exp(-(1/width) * ((pp - m) / m)^2)), m the median."""

    name: ClassVar[str] = "gaussian"
    factor: float = 0.78
    width: float = 9 / 2
    m: float = BERTIN_BOUNDARIES[1]

    def keep_probability(self, pp):
        x = np.asarray(pp, dtype=float)
        p = np.minimum(1.0, self.factor * np.exp(-(1.0 / self.width) * ((x - self.m) / self.m) ** 2))
        p = np.where(np.isnan(x), 0.0, p)
        return float(p) if np.ndim(pp) == 0 else p


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomStrategy, StepwiseStrategy, GaussianStrategy)
}


def make_strategy(name: str, boundaries=None, factor: float | None = None, width: float | None = None, **kw) -> Strategy:
    """Build a strategy by name. ``boundaries``: a ``Boundaries`` or a (q1, q2, q3) sequence;
    None means BERTIN's mC4 boundaries. ``factor``/``width`` None mean BERTIN's defaults."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    args: dict = dict(kw)
    if factor is not None:
        args["factor"] = float(factor)
    if boundaries is not None:
        q1, q2, q3 = (boundaries.q1, boundaries.q2, boundaries.q3) if hasattr(boundaries, "q1") else boundaries
        if not (0 < q1 <= q2 <= q3):
            raise ValueError(f"boundaries must satisfy 0 < Q1 <= Q2 <= Q3, got {q1}, {q2}, {q3}")
        if cls is StepwiseStrategy:
            args.update(q1=float(q1), q2=float(q2), q3=float(q3))
        elif cls is GaussianStrategy:
            args["m"] = float(q2)
    if width is not None:
        if cls is not GaussianStrategy:
            raise ValueError(f"--width only applies to the gaussian strategy, not {name!r}")
        args["width"] = float(width)
    return cls(**args)


def expected_fraction(strategy: Strategy, perplexities: Sequence[float]) -> float:
    pps = np.asarray(perplexities, dtype=float)
    return float(np.mean(strategy.keep_probability(pps))) if len(pps) else math.nan


def calibrate_factor(strategy: Strategy, perplexities: Sequence[float], target_fraction: float) -> float:
    """The factor whose expected kept fraction on ``perplexities`` equals ``target_fraction``.

    Every strategy's mean keep probability is continuous and non-decreasing in the factor, so a
    bisection on log(factor) finds it; ``random`` is solved directly.
    """
    if not 0 < target_fraction <= 1:
        raise ValueError(f"target fraction must be in (0, 1], got {target_fraction}")
    pps = np.asarray(perplexities, dtype=float)
    pps = pps[~np.isnan(pps)]
    if len(pps) == 0:
        raise ValueError("cannot calibrate a factor on an empty perplexity sample")
    if isinstance(strategy, RandomStrategy):
        return float(target_fraction)
    lo, hi = -40.0, 40.0  # log10(factor) bracket: far beyond any perplexity scale
    for _ in range(200):
        mid = (lo + hi) / 2
        if expected_fraction(strategy.with_factor(10.0**mid), pps) < target_fraction:
            lo = mid
        else:
            hi = mid
    return float(10.0**hi)
