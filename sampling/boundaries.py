"""Perplexity quartiles (Q1, median, Q3) estimated on a sample, saved with the LM they belong to.

A boundaries file is only meaningful with the LM, sentencepiece model, scoring mode and text
normalization that made it: perplexities of two LMs (or of ``ccnet`` vs ``lines`` mode, or of
lowercased vs cased text) are not on the same scale. The file records the scorer's ``identity()``
and ``check()`` refuses a mismatch with an error naming the file.

Files written before the normalization was recorded hold none; they are read as made with the
normalization that version always used (``cc_net``, or none in ``raw`` mode), which is exact:
see ``sampling.scorer.upgrade_identity``.
It also keeps 1,001 quantiles of the sample so ``--target-fraction`` can calibrate a factor later
without re-scoring.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from bertin_bench.io import read_json, write_json_atomic
from bertin_bench.provenance import environment
from sampling.io import (
    DEFAULT_MAX_CHARS, SKIP, InputSpec, make_reader, no_text_field_message, parse_input, stored_perplexity_ok,
    text_skip_reason,
)
from sampling.scorer import identity_diffs, upgrade_identity

log = logging.getLogger(__name__)

N_QUANTILES = 1001
FORMAT = "bertin-bench/boundaries/v1"


@dataclasses.dataclass
class Boundaries:
    q1: float
    q2: float
    q3: float
    identity: dict  # the scorer's identity(): lm/sp hashes, mode, normalization
    mode: str
    n: int  # documents the quartiles were computed on
    quantiles: list[float] = dataclasses.field(default_factory=list, repr=False)
    # The same 1,001 quantiles with every document weighted by its whitespace words: the
    # perplexity distribution of a random *word*, which calibrates ``--target-tokens``.
    word_quantiles: list[float] = dataclasses.field(default_factory=list, repr=False)
    source: str | None = None
    reservoir: bool = False
    seed: int = 0
    skipped: dict = dataclasses.field(default_factory=dict)
    provenance: dict = dataclasses.field(default_factory=dict, repr=False)
    path: str | None = dataclasses.field(default=None, repr=False, compare=False)

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.q1, self.q2, self.q3)

    def sample(self) -> np.ndarray:
        """The stored perplexity sample (quantiles) used for factor calibration."""
        return np.asarray(self.quantiles or [self.q1, self.q2, self.q3], dtype=float)

    def word_sample(self) -> np.ndarray:
        """The word-weighted perplexity sample: its mean keep probability is the expected kept
        fraction of words (not documents)."""
        if not self.word_quantiles:
            where = self.path or "these boundaries"
            raise ValueError(f"{where} hold no word-weighted quantiles (made by an older version): re-run "
                             "`bench sample boundaries` to use --target-tokens")
        return np.asarray(self.word_quantiles, dtype=float)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path")
        return {"format": FORMAT, **d}

    def save(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Boundaries":
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a boundaries file (expected format {FORMAT!r})")
        data.pop("format")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"{path}: unknown boundaries fields {sorted(unknown)}")
        try:
            b = cls(**data, path=str(path))
        except TypeError as err:
            raise ValueError(f"{path}: incomplete boundaries file ({err})") from None
        if isinstance(b.identity, dict) and "normalization" not in b.identity:
            b.identity = {**b.identity, "normalization": upgrade_identity({"mode": b.mode})["normalization"]}
            log.info("%s: no recorded normalization (an older file): read as %s, what its %s mode always used",
                     path, b.identity["normalization"]["name"], b.mode)
        if not (0 < b.q1 <= b.q2 <= b.q3):
            raise ValueError(f"{path}: boundaries must satisfy 0 < Q1 <= Q2 <= Q3, got {b.as_tuple()}")
        return b

    def check(self, identity: dict, what: str = "the scorer") -> None:
        """Raise if these boundaries were made with another LM, sentencepiece model, mode or normalization."""
        diffs = identity_diffs(self.identity, identity)
        if diffs:
            where = self.path or "the boundaries"
            raise ValueError(
                f"{where} were estimated with another LM or scoring mode (or normalization) than {what} "
                f"({'; '.join(d.replace(' vs ', ' here vs ', 1) for d in diffs)}). Re-run `bench sample "
                "boundaries` with the same --lm-dir, --mode and --normalization."
            )


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Quantiles of ``values`` where each counts ``weights`` times (a document counted once per
    word): the value below which a fraction q of the total weight lies (inverse weighted CDF)."""
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    if weights.sum() <= 0:
        return np.quantile(values, qs)
    cdf = np.cumsum(weights) / weights.sum()
    return values[np.minimum(np.searchsorted(cdf, qs, side="left"), len(values) - 1)]


def iter_texts(spec: InputSpec, text_key: str, max_chars: int, skipped: dict, limit: int | None = None) -> Iterator[tuple[str, float | None]]:
    """(text, stored perplexity or None) for each valid record; bad records are counted in ``skipped``."""
    reader = make_reader(spec, text_key=text_key, limit=limit)
    for doc in reader.run(rank=0, world_size=1):
        reason = doc.metadata.get(SKIP) or text_skip_reason(doc.text, max_chars)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        pp = doc.metadata.get("perplexity")
        yield doc.text, (float(pp) if isinstance(pp, (int, float)) and not isinstance(pp, bool) else None)


def estimate_boundaries(
    input,
    *,
    scorer,
    n_docs: int = 10_000,
    text_key: str = "text",
    reservoir: bool = False,
    seed: int = 0,
    max_chars: int = DEFAULT_MAX_CHARS,
    batch_size: int = 256,
    progress: bool = True,
) -> Boundaries:
    """Quartiles of the perplexity of the first ``n_docs`` valid documents of ``input`` (or of a
    uniform reservoir sample of ``n_docs`` over the whole input with ``reservoir=True``).

    Perplexities already stored in scored shards (``bench sample score`` output whose scorer.json
    matches ``scorer``) are reused instead of re-scoring.
    """
    spec = parse_input(input)
    identity = scorer.identity()
    reuse = stored_perplexity_ok(spec, identity)
    skipped: dict[str, int] = {}
    texts = iter_texts(spec, text_key, max_chars, skipped, limit=None)
    if reservoir:
        rng = random.Random(seed)
        sample: list[tuple[str, float | None]] = []
        for i, item in enumerate(tqdm(texts, desc="reservoir", unit="doc", disable=None if progress else True)):
            if i < n_docs:
                sample.append(item)
            else:
                j = rng.randrange(i + 1)  # Algorithm R: every document ends up in with prob n/N
                if j < n_docs:
                    sample[j] = item
    else:
        sample = []
        for item in texts:
            sample.append(item)
            if len(sample) >= n_docs:
                break
    if not sample:
        if set(skipped) == {"missing_text"}:  # almost surely a wrong --text-key: say which fields there are
            raise ValueError(no_text_field_message(spec, text_key, skipped["missing_text"]))
        raise ValueError(f"{spec.describe()}: no valid document to estimate boundaries on (skipped: {skipped})")

    pps = np.empty(len(sample))
    todo = [i for i, (_, pp) in enumerate(sample) if not (reuse and pp is not None)]
    for i, (_, pp) in enumerate(sample):
        if reuse and pp is not None:
            pps[i] = pp
    with tqdm(total=len(todo), desc="scoring", unit="doc", disable=None if progress and todo else True) as bar:
        for start in range(0, len(todo), batch_size):
            idx = todo[start:start + batch_size]
            pps[idx] = scorer.perplexities([sample[i][0] for i in idx])
            bar.update(len(idx))
    words = np.fromiter((len(text.split()) for text, _ in sample), dtype=float, count=len(sample))
    nan = int(np.isnan(pps).sum())
    if nan:
        skipped["unscorable"] = skipped.get("unscorable", 0) + nan
        words = words[~np.isnan(pps)]
        pps = pps[~np.isnan(pps)]
    if len(pps) == 0:
        raise ValueError(f"{spec.describe()}: no scorable document in the sample (skipped: {skipped})")
    q1, q2, q3 = (float(x) for x in np.quantile(pps, [0.25, 0.5, 0.75]))
    quantiles = [float(x) for x in np.quantile(pps, np.linspace(0, 1, N_QUANTILES))]
    word_quantiles = [float(x) for x in weighted_quantiles(pps, words, np.linspace(0, 1, N_QUANTILES))]
    if not math.isfinite(q3) or q1 <= 0:
        raise ValueError(f"{spec.describe()}: degenerate perplexity sample (quartiles {q1}, {q2}, {q3})")
    b = Boundaries(
        q1=q1, q2=q2, q3=q3, identity=identity, mode=scorer.mode, n=int(len(pps)), quantiles=quantiles,
        word_quantiles=word_quantiles,
        source=spec.describe(), reservoir=reservoir, seed=seed, skipped=skipped,
        provenance={**environment(), "scorer": scorer.describe(), "n_docs_requested": n_docs},
    )
    log.info("boundaries on %d docs: Q1=%.1f Q2=%.1f Q3=%.1f", b.n, q1, q2, q3)
    return b
