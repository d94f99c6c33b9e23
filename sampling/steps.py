"""The datatrove steps of a sampling pass, one class per behaviour: score, validate, sample.

The reader and the shard writer are in ``sampling/io.py``; ``sampling/pipeline.py`` puts them in
order. Keep decisions are a hash of (seed, document key, perplexity) mapped to [0, 1) and compared
with the strategy's keep probability (:func:`keep_uniform`), so the kept set depends on nothing
else: not the order of the input, the number of tasks or workers, or an interruption.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

from sampling._lazy_hub import import_datatrove_io

import_datatrove_io()  # before the datatrove imports below: see sampling/_lazy_hub.py

from datatrove.data import Document, DocumentsPipeline  # noqa: E402
from datatrove.pipeline.base import PipelineStep  # noqa: E402
from datatrove.utils.batching import batched  # noqa: E402

from bertin_bench.io import write_json_atomic  # noqa: E402
from sampling.histogram import HIST_BINS, bin_index  # noqa: E402
from sampling.io import DEFAULT_MAX_CHARS, DETAIL, SKIP, WHERE, text_skip_reason  # noqa: E402
from sampling.options import SampleError  # noqa: E402

if TYPE_CHECKING:  # imported where needed: numpy, which `bench sample score` starts without
    from sampling.strategies import Strategy

VALIDATE_STEP = "🧹 skip bad input"  # stats.py finds the drop reasons in datatrove's stats by this name


def keep_uniform(seed: int, key: str, perplexity: float) -> float:
    """A uniform number in [0, 1) determined by (seed, document key, perplexity) only."""
    h = hashlib.blake2b(f"{seed}\x1f{perplexity!r}\x1f".encode(), digest_size=8)
    h.update(key.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "big") / 2.0**64


class ScorePerplexity(PipelineStep):
    """Puts ``metadata["perplexity"]`` on every valid document, scoring in batches.

    Documents that cannot be scored get ``metadata["_skip"]`` (``empty``, ``too_long``,
    ``unscorable``) instead; the validation filter after this step counts and drops them.
    """

    name = "📈 perplexity"
    type = "🔢 - SCORER"

    def __init__(self, scorer, reuse: bool = False, max_chars: int = DEFAULT_MAX_CHARS, batch_size: int = 256):
        super().__init__()
        self.scorer = scorer
        self.reuse = reuse
        self.max_chars = max_chars
        self.batch_size = batch_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for batch in batched(data, self.batch_size):
            todo = []
            for doc in batch:
                meta = doc.metadata
                if SKIP in meta:
                    continue
                reason = text_skip_reason(doc.text, self.max_chars)
                if reason:
                    meta[SKIP] = reason
                    continue
                pp = meta.get("perplexity")
                if self.reuse and isinstance(pp, (int, float)) and not isinstance(pp, bool) and math.isfinite(pp):
                    self.stat_update("reused")
                    continue
                todo.append(doc)
            if todo:
                with self.track_time("batch"):
                    pps = self.scorer.perplexities([d.text for d in todo])
                for doc, pp in zip(todo, pps):
                    if math.isnan(pp):
                        doc.metadata[SKIP] = "unscorable"
                        doc.metadata[DETAIL] = "no scorable line after normalization"
                    else:
                        doc.metadata["perplexity"] = pp
                self.stat_update("scored", value=len(todo))
            yield from batch


class DropFilter(PipelineStep):
    """A filter step: ``filter_batch`` returns, per document, True (keep) or ``(False, reason)``.

    datatrove's ``BaseFilter`` conventions -- ``total``/``forwarded``/``dropped`` and
    ``dropped_<reason>`` in the task stats, dropped documents (with ``filter_reason``) to an
    optional exclusion writer -- without importing it: ``datatrove.pipeline.filters.base_filter``
    runs the ``filters`` and ``writers`` package inits, i.e. every datatrove filter plus the Hub
    writer and huggingface_hub's whole API, 0.2 s of every command's start-up. It also skips
    BaseFilter's per-document length stats (3 stat updates per document); our own stats count
    words once, in the sampler.
    """

    type = "🔻 - FILTER"

    def __init__(self, exclusion_writer=None, batch_size: int = 256):
        super().__init__()
        self.exclusion_writer = exclusion_writer
        self.batch_size = batch_size

    def filter_batch(self, batch: list[Document]) -> list:
        raise NotImplementedError

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.exclusion_writer or contextlib.nullcontext() as writer:
            for batch in batched(data, self.batch_size):
                for doc, result in zip(batch, self.filter_batch(batch)):
                    keep, reason = result if isinstance(result, tuple) else (result, None)
                    self.stat_update("total")
                    if keep:
                        self.stat_update("forwarded")
                        yield doc
                        continue
                    self.stat_update("dropped")
                    if reason:
                        self.stat_update(f"dropped_{reason}")
                    if writer is not None:
                        doc.metadata["filter_reason"] = reason
                        writer.write(doc, rank)


class ValidateDocuments(DropFilter):
    """Drops documents marked ``_skip`` with the reason as datatrove's drop reason
    (``dropped_<reason>`` in the task stats); writes them to the rejects; raises under strict."""

    name = VALIDATE_STEP

    def __init__(self, strict: bool = False, exclusion_writer=None):
        super().__init__(exclusion_writer=exclusion_writer)
        self.strict = strict

    def filter_batch(self, batch: list[Document]) -> list:
        return [self._check(doc) for doc in batch]

    def _check(self, doc: Document):
        reason = doc.metadata.get(SKIP)
        if reason is None:
            return True
        if self.strict:
            detail = doc.metadata.get(DETAIL) or reason
            raise SampleError(f"{doc.metadata.get(WHERE, doc.id)}: {reason}: {detail} (--strict)")
        return False, reason


class PerplexitySampler(DropFilter):
    """Keeps a document when keep_uniform(seed, key, pp) < strategy.keep_probability(pp); with no
    strategy keeps everything (``bench sample score``). Accumulates the per-task counters and
    histograms and writes them to ``stats_dir/NNNNN.json`` when the task's stream ends."""

    name = "🎲 perplexity sampler"

    def __init__(self, strategy: Strategy | None, stats_dir: str, seed: int = 0, boundaries=None,
                 use_id: bool = False, batch_size: int = 256):
        super().__init__(batch_size=batch_size)
        self.strategy = strategy
        self.stats_dir = stats_dir
        self.seed = seed
        self.bounds = boundaries.as_tuple() if boundaries is not None else None
        self.use_id = use_id

    def filter_batch(self, batch: list[Document]):
        # float(): a stored integer perplexity must hash like the same float (keep_uniform uses repr)
        pps = [float(d.metadata["perplexity"]) for d in batch]
        if self.strategy is None:  # `bench sample score` keeps everything, and starts without numpy
            probs = [1.0] * len(pps)
        else:
            import numpy as np

            probs = np.asarray(self.strategy.keep_probability(np.asarray(pps, dtype=float)), dtype=float).tolist()
        out = []
        for doc, pp, p in zip(batch, pps, probs):
            key = doc.id if self.use_id else doc.text
            keep = p >= 1.0 or (p > 0.0 and keep_uniform(self.seed, key, pp) < p)
            self._count(doc, pp, p, keep)
            out.append(True if keep else (False, "sampled_out"))
        return out

    def _count(self, doc: Document, pp: float, p: float, keep: bool) -> None:
        c = self._counts
        words = len(doc.text.split())
        b = bin_index(pp)
        groups = [c["total"]]
        if self.bounds is not None:
            q = "Q1" if pp <= self.bounds[0] else "Q2" if pp <= self.bounds[1] else "Q3" if pp <= self.bounds[2] else "Q4"
            groups.append(c["by_quartile"].setdefault(q, _group()))
        source = doc.metadata.get("source")
        if isinstance(source, str):
            groups.append(c["by_source"].setdefault(source, _group()))
        for g in groups:
            g["seen"] += 1
            g["expected_kept"] += p
            g["expected_words_kept"] += p * words
            g["words_seen"] += words
            g["hist_seen"][b] += 1
            if keep:
                g["kept"] += 1
                g["words_kept"] += words
                g["hist_kept"][b] += 1

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._counts = {"total": _group(), "by_quartile": {}, "by_source": {}}
        yield from super().run(data, rank, world_size)
        # Reached only when the stream ended normally: the shard rename and datatrove's completion
        # marker come after, so a task with a stats file but no marker is simply rerun.
        write_json_atomic(Path(self.stats_dir) / f"{rank:05d}.json", {"rank": rank, "world_size": world_size, **self._counts})


def _group() -> dict:
    return {"seen": 0, "kept": 0, "expected_kept": 0.0, "words_seen": 0, "words_kept": 0, "expected_words_kept": 0.0,
            "hist_seen": [0] * HIST_BINS, "hist_kept": [0] * HIST_BINS}
