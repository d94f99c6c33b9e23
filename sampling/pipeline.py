"""The sampling pipeline on datatrove: read -> score -> validate -> sample -> write, per task.

Layout of an output directory ``OUT``::

    OUT/run.json              the configuration (a rerun with another one is refused)
    OUT/scorer.json           the scorer identity the ``perplexity`` fields belong to
    OUT/data/NNNNN.jsonl.gz   one shard per task, flat records + ``perplexity``
    OUT/rejects/NNNNN.jsonl.gz  bad records with reason and file:line (with ``rejects=True``)
    OUT/logs/                 datatrove's logs, per-task stats and completion markers (resume)
    OUT/logs/sampling/NNNNN.json  our per-task counters and histograms
    OUT/stats.json, OUT/perplexity_hist.png   aggregated from the per-task files on disk

Keep decisions are a hash of (seed, document key, perplexity) mapped to [0, 1) and compared with the
strategy's keep probability, so the kept set depends on nothing else: not the order of the input, not
the number of tasks or workers, not whether the run was killed and resumed. The document key is its
``--id-key`` field when given, else the text itself.

Resume: a task's shard is renamed into place when its stream ends and datatrove then writes its
completion marker; rerunning the same command skips completed tasks and reruns the others from
scratch, truncating any ``.partial`` shard a killed task left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sampling._lazy_hub import import_datatrove_io

import_datatrove_io()  # before the datatrove imports below: see sampling/_lazy_hub.py

from datatrove.data import Document, DocumentsPipeline  # noqa: E402
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.base import PipelineStep  # noqa: E402
from datatrove.utils.batching import batched  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bertin_bench.io import read_json, write_json_atomic  # noqa: E402
from bertin_bench.provenance import environment  # noqa: E402
from sampling.io import (  # noqa: E402
    DATA_SUBDIR, DEFAULT_MAX_CHARS, DETAIL, SCORER_MANIFEST, SKIP, WHERE, InputSpec, ShardWriter,
    make_reader, parse_input, text_skip_reason,
)
from sampling.stats import HIST_BINS, HIST_HI, HIST_LO, LOGS, TASK_STATS, VALIDATE_STEP, aggregate  # noqa: E402

if TYPE_CHECKING:  # imported where needed: numpy, which `bench sample score` starts without
    from sampling.strategies import Strategy

log = logging.getLogger(__name__)

EXECUTORS = ("local", "slurm", "ray")


class SampleError(ValueError):
    """A bad input under --strict, or an inconsistent run configuration."""


# -- keep decision ----------------------------------------------------------------------------------

def keep_uniform(seed: int, key: str, perplexity: float) -> float:
    """A uniform number in [0, 1) determined by (seed, document key, perplexity) only."""
    h = hashlib.blake2b(f"{seed}\x1f{perplexity!r}\x1f".encode(), digest_size=8)
    h.update(key.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "big") / 2.0**64


def stored_perplexity_ok(spec: InputSpec, identity: dict) -> bool:
    """Whether ``perplexity`` fields in the input may be reused: only when the input is the output
    of ``bench sample score``/``run`` and its scorer.json names the same LM, sp model and mode."""
    if not spec.source_dir:
        return False
    manifest = Path(spec.source_dir) / SCORER_MANIFEST
    stored = read_json(manifest)
    same = all(stored.get(k) == identity.get(k) for k in ("lm_hash", "sp_hash", "mode"))
    if not same:
        log.warning("%s: scored with another LM/mode than the current scorer; re-scoring", manifest)
    return same


# -- datatrove steps -------------------------------------------------------------------------------

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
        b = int(min(HIST_BINS - 1, max(0, (math.log10(pp) - HIST_LO) / (HIST_HI - HIST_LO) * HIST_BINS))) if pp > 0 else 0
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


# -- building and running ---------------------------------------------------------------------------

def build_pipeline(spec: InputSpec, out_dir: Path, *, scorer, strategy, boundaries, seed, text_key, id_key,
                   strict, limit, rejects, reuse, max_chars) -> list:
    reject_writer = ShardWriter(str(out_dir / "rejects"), text_key=text_key, rejects=True) if rejects else None
    return [
        make_reader(spec, text_key=text_key, id_key=id_key, limit=limit, progress=True),
        ScorePerplexity(scorer, reuse=reuse, max_chars=max_chars),
        ValidateDocuments(strict=strict, exclusion_writer=reject_writer),
        PerplexitySampler(strategy, stats_dir=str(out_dir / LOGS / TASK_STATS), seed=seed,
                          boundaries=boundaries, use_id=id_key is not None),
        ShardWriter(str(out_dir / DATA_SUBDIR), text_key=text_key),
    ]


def _quiet() -> bool:
    """datatrove logs every step of every task at INFO; show that only with `bench -v`."""
    return not logging.getLogger().isEnabledFor(logging.INFO)


class QuietLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor, with the per-task console log at ERROR level unless ``bench -v``.

    datatrove uses ``local_rank`` only to pick the console level (INFO for local rank 0, ERROR for
    the others); the task log files under OUT/logs/logs/ keep every message either way.
    """

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        return super()._run_for_rank(rank, local_rank=1 if _quiet() else local_rank, node_rank=node_rank)


def make_executor(kind: str, pipeline: list, *, tasks: int, workers: int, logging_dir: str, **options):
    """datatrove's executor by name. ``options`` go to the executor (slurm: partition, time, ...)."""
    if kind == "local":
        from loguru import logger

        # The executor's own messages (a summary table of every step, "k/n tasks completed") go to
        # the console whatever the task loggers say; the task logs stay complete either way.
        (logger.disable if _quiet() else logger.enable)("datatrove.executor.local")
        # fork: models load lazily, so children start instantly with nothing heavy to copy. But a
        # process that has imported JAX (`bench study`, the test suite) runs JAX's threads, and
        # forking a multithreaded process can deadlock: use forkserver there (steps pickle).
        default = "forkserver" if "jax" in sys.modules else "fork"
        if "jax" in sys.modules:
            import multiprocess

            # datatrove's run() also starts a multiprocess.Manager() with the default context,
            # even for one worker: make that default forkserver too in a JAX process.
            multiprocess.set_start_method("forkserver", force=True)
        return QuietLocalExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir,
                                  start_method=options.pop("start_method", default), **options)
    if kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        if not options.get("partition") or not options.get("time"):
            raise SampleError("--executor slurm needs --slurm-partition and --slurm-time")
        return SlurmPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, **options)
    if kind == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SampleError("--executor ray needs Ray: pip install 'bertin-bench[ray]'") from None
        from datatrove.executor.ray import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, **options)
    raise SampleError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")


def _check_run_config(out_dir: Path, config: dict, provenance: dict) -> None:
    """Refuse to resume into an output directory made by another configuration (mixed shards)."""
    path = out_dir / "run.json"
    if path.exists():
        old = read_json(path).get("config") or {}
        if old != config:
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise SampleError(
                f"{out_dir} already holds a run with another configuration (differs in: {', '.join(changed)}); "
                "use a new --out, or delete it to start over"
            )
    else:
        write_json_atomic(path, {"config": config, "created": provenance})


def _execute(input, out_dir, *, scorer, strategy, boundaries, seed, tasks, workers, executor, text_key,
             strict, limit, id_key, rejects, max_chars, reuse, extra_config, executor_options, plot=True) -> dict:
    out_dir = Path(out_dir)
    spec = parse_input(input)
    identity = scorer.identity()
    if boundaries is not None:
        boundaries.check(identity)
    reuse = reuse and stored_perplexity_ok(spec, identity)
    config = {
        "input": spec.describe(), "input_files": list(spec.files), "text_key": text_key, "id_key": id_key,
        "scorer": identity, "strategy": strategy.params() if strategy else None,
        "boundaries": list(boundaries.as_tuple()) if boundaries else None, "seed": seed, "tasks": tasks,
        "limit": limit, "max_chars": max_chars, "strict": strict, **extra_config,
    }
    config = json.loads(json.dumps(config, default=str))  # as it reads back from run.json
    provenance = environment()  # once: reading package metadata costs ~0.1 s
    _check_run_config(out_dir, config, provenance)
    write_json_atomic(out_dir / SCORER_MANIFEST, {**identity, "paths": scorer.describe()})
    pipeline = build_pipeline(spec, out_dir, scorer=scorer, strategy=strategy, boundaries=boundaries, seed=seed,
                              text_key=text_key, id_key=id_key, strict=strict, limit=limit, rejects=rejects,
                              reuse=reuse, max_chars=max_chars)
    exe = make_executor(executor, pipeline, tasks=tasks, workers=workers, logging_dir=str(out_dir / LOGS),
                        **(executor_options or {}))
    done = sum((out_dir / LOGS / "completions" / f"{r:05d}").exists() for r in range(tasks))
    if done:
        log.warning("%s: resuming, %d of %d tasks already complete", out_dir, done, tasks)
    exe.run()
    return aggregate(out_dir, tasks=tasks, config=config, strategy=strategy, boundaries=boundaries,
                     scorer=scorer, reused_scores=reuse, plot=plot, provenance=provenance)


def run_score(input, out_dir, *, scorer, tasks: int = 1, workers: int = 1, executor: str = "local",
              text_key: str = "text", strict: bool = False, limit: int | None = None, id_key: str | None = None,
              rejects: bool = False, max_chars: int = DEFAULT_MAX_CHARS, executor_options: dict | None = None,
              plot: bool = False) -> dict:
    """Score every document of ``input`` into ``out_dir/data`` shards (nothing dropped but bad input);
    returns the stats (also in ``out_dir/stats.json``; the histogram PNG only with ``plot``)."""
    return _execute(input, out_dir, scorer=scorer, strategy=None, boundaries=None, seed=0, tasks=tasks,
                    workers=workers, executor=executor, text_key=text_key, strict=strict, limit=limit,
                    id_key=id_key, rejects=rejects, max_chars=max_chars, reuse=False,
                    extra_config={"command": "score"}, executor_options=executor_options, plot=plot)


def run_sample(input, out_dir, *, strategy, boundaries=None, target_fraction: float | None = None,
               target_docs: int | None = None, target_tokens: int | None = None, seed: int = 0, scorer=None,
               tasks: int = 1, workers: int = 1, executor: str = "local", text_key: str = "text",
               strict: bool = False, limit: int | None = None, id_key: str | None = None,
               factor: float | None = None, width: float | None = None,
               rejects: bool = False, max_chars: int = DEFAULT_MAX_CHARS, boundary_docs: int = 10_000,
               executor_options: dict | None = None) -> dict:
    """Sample ``input`` into ``out_dir``; returns the stats (also in ``out_dir/stats.json``).

    ``strategy``: a name (random, stepwise, gaussian) or a ``Strategy``. ``boundaries``: a
    ``Boundaries``, a path to one, or None to estimate them on the first ``boundary_docs`` documents
    of the input (saved to ``out_dir/boundaries.json``). With ``target_fraction`` or ``target_docs``
    the factor is calibrated on the boundary sample so the expected kept fraction hits the target;
    with ``target_tokens`` (whitespace words, the unit of ``tokens_kept``) it is calibrated on the
    sample's word-weighted perplexities so the expected kept fraction of the input's words hits it.
    """
    # Here rather than at the top: they need numpy, which `bench sample score` does without (start-up).
    from sampling.boundaries import Boundaries, estimate_boundaries
    from sampling.scorer import PerplexityScorer
    from sampling.strategies import RandomStrategy, calibrate_factor, expected_fraction, make_strategy

    scorer = scorer or PerplexityScorer()
    given = [name for name, v in (("--target-fraction", target_fraction), ("--target-docs", target_docs),
                                  ("--target-tokens", target_tokens)) if v is not None]
    if len(given) > 1:
        raise SampleError(f"give one of --target-fraction, --target-docs, --target-tokens, not {' and '.join(given)}")
    if target_tokens is not None and limit is not None:
        raise SampleError("--target-tokens counts the words of the whole input and cannot be combined with --limit")
    if isinstance(boundaries, (str, os.PathLike)):
        boundaries = Boundaries.load(boundaries)
    name = strategy if isinstance(strategy, str) else strategy.name
    needs_sample = name != "random"  # random's factor is the fraction itself: no perplexity sample needed
    saved = Path(out_dir) / "boundaries.json"
    if boundaries is None and needs_sample and saved.exists():  # a resumed run: same estimate as before
        boundaries = Boundaries.load(saved)
    if boundaries is None and needs_sample:
        log.info("no boundaries given: estimating them on the first %d documents", boundary_docs)
        boundaries = estimate_boundaries(input, scorer=scorer, n_docs=boundary_docs, text_key=text_key,
                                         max_chars=max_chars)
        boundaries.save(saved)
        boundaries.path = str(saved)
    if boundaries is not None:
        boundaries.check(scorer.identity())
        if not saved.exists():  # the run directory records the boundaries it used (plots, `stats`)
            boundaries.save(saved)
    if isinstance(strategy, str):
        strategy = make_strategy(strategy, boundaries=boundaries, factor=factor, width=width)
    target = None
    if target_docs is not None:
        total = count_documents(input)
        if limit is not None:  # --limit applies per task
            total = min(total, limit * tasks)
        target_fraction = min(1.0, target_docs / total)
        target = {"docs": target_docs, "input_records": total}
    fraction_of = "fraction"  # what the target fraction counts: documents, or words
    if target_tokens is not None:
        total_words = count_words(input, text_key=text_key, max_chars=max_chars)
        target_fraction = min(1.0, target_tokens / total_words)
        target = {"tokens": target_tokens, "input_words": total_words}
        fraction_of = "word_fraction"
    if target_fraction is not None:
        # The calibration sample: perplexities per document, or weighted by words for a word target.
        sample = None if boundaries is None else (
            boundaries.word_sample() if target_tokens is not None else boundaries.sample())
        # random keeps every document, hence every word, with the same probability: factor = fraction
        strategy = strategy.with_factor(target_fraction if isinstance(strategy, RandomStrategy)
                                        else calibrate_factor(strategy, sample, target_fraction))
        target = {**(target or {}), fraction_of: target_fraction}
        if sample is not None:
            target[f"expected_{fraction_of}_on_boundary_sample"] = expected_fraction(strategy, sample)
    return _execute(input, out_dir, scorer=scorer, strategy=strategy, boundaries=boundaries, seed=seed, tasks=tasks,
                    workers=workers, executor=executor, text_key=text_key, strict=strict, limit=limit,
                    id_key=id_key, rejects=rejects, max_chars=max_chars, reuse=True,
                    extra_config={"command": "run", "target": target}, executor_options=executor_options)


def count_words(input, *, text_key: str = "text", max_chars: int = DEFAULT_MAX_CHARS) -> int:
    """Whitespace words of the valid documents of a local input: the base of ``--target-tokens``."""
    from sampling.boundaries import iter_texts

    spec = parse_input(input)
    if spec.hf_dataset:
        raise SampleError("--target-tokens needs a local input (the size of a streamed Hub dataset is unknown); "
                          "use --target-fraction")
    words = sum(len(text.split()) for text, _ in tqdm(iter_texts(spec, text_key, max_chars, {}), desc="counting words",
                                                      unit="doc", disable=None))
    if words == 0:
        raise SampleError(f"{spec.describe()}: no words in any valid document")
    return words


def count_documents(input) -> int:
    """Records in a local input (lines/rows, bad ones included): the base of ``--target-docs``."""
    spec = parse_input(input)
    if spec.hf_dataset:
        raise SampleError("--target-docs needs a local input (the size of a streamed Hub dataset is unknown); "
                          "use --target-fraction")
    n = sum(1 for _ in make_reader(spec).run())
    if n == 0:
        raise SampleError(f"{spec.describe()}: no records")
    return n
