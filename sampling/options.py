"""The settings of a scoring pass and of a sampling run, each one value built once.

A sampling run is a scoring pass plus a keep decision, so ``run_score`` takes a
:class:`ScoreOptions` and ``run_sample`` takes the same :class:`ScoreOptions` plus a
:class:`SampleOptions`. The CLI builds them from its flags, the study from its config; values are
checked at construction, so a bad one fails before any work and the message names the option.
This module stays light (no numpy): ``bench sample score`` builds these before anything else.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Union

from bertin_bench.executor import ExecutorOptions
from sampling.io import DEFAULT_MAX_CHARS

if TYPE_CHECKING:
    from sampling.boundaries import Boundaries
    from sampling.strategies import Strategy


class SampleError(ValueError):
    """A bad input under --strict, or an inconsistent run configuration."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScoreOptions:
    """How a pass reads its input, treats bad records and where its tasks run.

    text_key / id_key
        The record field holding the text; the field with a stable document id for the keep hash
        (None: the text itself is the key).
    strict
        Stop at the first bad record (the error names file:line) instead of counting it as skipped.
    limit
        Read at most this many records per task (for trials); None reads everything.
    rejects
        Also write the skipped records to ``OUT/rejects/`` with their reason and file:line.
    max_chars
        Longer documents are skipped as ``too_long`` (0: no limit).
    plot
        Draw ``OUT/perplexity_hist.png`` after scoring (matplotlib costs ~1 s). A sampling run
        always draws it: the figure is how one sees what was kept.
    executor
        Where the tasks run and how many there are (:class:`bertin_bench.executor.ExecutorOptions`).
    """

    text_key: str = "text"
    id_key: str | None = None
    strict: bool = False
    limit: int | None = None
    rejects: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    plot: bool = False
    executor: ExecutorOptions = dataclasses.field(default_factory=ExecutorOptions)

    def __post_init__(self) -> None:
        if not self.text_key:
            raise SampleError("text_key (--text-key) must name a field")
        if self.limit is not None and self.limit < 1:
            raise SampleError(f"limit (--limit) must be >= 1 records per task, got {self.limit}")
        if self.max_chars < 0:
            raise SampleError(f"max_chars (--max-chars) must be >= 0 (0: no limit), got {self.max_chars}")
        if not isinstance(self.executor, ExecutorOptions):
            raise SampleError(f"executor must be an ExecutorOptions, got {type(self.executor).__name__}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleOptions:
    """What a sampling run keeps.

    strategy
        A name (``random``, ``stepwise``, ``gaussian``) or a ``Strategy``.
    boundaries
        A ``Boundaries``, a path to a boundaries file, or None to estimate them on the first
        ``boundary_docs`` documents of the input (saved to ``OUT/boundaries.json``).
    target_fraction / target_docs / target_tokens
        At most one: calibrate the strategy's factor so the expected kept fraction of documents,
        the expected number of kept documents, or the expected kept whitespace words hits it.
    factor, width
        The strategy's factor (None: BERTIN's, or calibrated) and the Gaussian width (None: 9/2).
    seed
        Seed of the keep hash.
    boundary_docs
        Sample size when the boundaries are estimated here.
    """

    strategy: Union[str, "Strategy"]
    boundaries: Union["Boundaries", str, os.PathLike, None] = None
    target_fraction: float | None = None
    target_docs: int | None = None
    target_tokens: int | None = None
    factor: float | None = None
    width: float | None = None
    seed: int = 0
    boundary_docs: int = 10_000

    def __post_init__(self) -> None:
        given = [name for name, v in (("--target-fraction", self.target_fraction), ("--target-docs", self.target_docs),
                                      ("--target-tokens", self.target_tokens)) if v is not None]
        if len(given) > 1:
            raise SampleError(f"give one of --target-fraction, --target-docs, --target-tokens, not {' and '.join(given)}")
        if self.target_fraction is not None and not 0 < self.target_fraction <= 1:
            raise SampleError(f"target_fraction (--target-fraction) must be in (0, 1], got {self.target_fraction}")
        for name in ("target_docs", "target_tokens", "boundary_docs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SampleError(f"{name} (--{name.replace('_', '-')}) must be >= 1, got {value}")

    @property
    def strategy_name(self) -> str:
        return self.strategy if isinstance(self.strategy, str) else self.strategy.name
