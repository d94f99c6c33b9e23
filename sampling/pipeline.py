"""The sampling pipeline on datatrove: read -> score -> validate -> sample -> write, per task.

The public entry points ``run_score`` and ``run_sample``. Their settings are one value each
(``sampling/options.py``), the steps are in ``sampling/steps.py``, the executor is made in
``sampling/executors.py`` and the stats are summed in ``sampling/stats.py``.

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

One run per output directory: ``run_score`` and ``run_sample`` hold ``OUT/.bench.lock``
(``bertin_bench.locks``) from before they write anything until they return, so a second run into
the same directory is refused naming the first, and never shares its ``.partial`` files. The
lock frees itself when its holder dies, and the local executor's processes die with the command
(``sampling/executors.py``), so the rerun after a kill starts at once. See docs/guarantees.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from bertin_bench import markers
from bertin_bench.io import read_json, write_json_atomic
from bertin_bench.locks import OutputLocked, output_lock
from bertin_bench.provenance import environment
from sampling.executors import make_executor
from sampling.io import (
    DATA_SUBDIR, DEFAULT_MAX_CHARS, SCORER_MANIFEST, InputSpec, ShardWriter, make_reader, no_text_field_message, parse_input,
    stored_perplexity_ok,
)
from sampling.options import SampleError, SampleOptions, ScoreOptions
from sampling.stats import LOGS, TASK_STATS, aggregate
from sampling.steps import PerplexitySampler, ScorePerplexity, ValidateDocuments

if TYPE_CHECKING:  # imported where needed: numpy, which `bench sample score` starts without
    from sampling.strategies import Strategy

__all__ = ["SampleError", "SampleOptions", "ScoreOptions", "run_sample", "run_score"]

log = logging.getLogger(__name__)


def build_pipeline(spec: InputSpec, out_dir: Path, options: ScoreOptions, *, scorer, strategy: Strategy | None,
                   boundaries, seed: int, reuse: bool) -> list:
    """read -> score -> validate -> sample -> write."""
    reject_writer = ShardWriter(str(out_dir / "rejects"), text_key=options.text_key, rejects=True) if options.rejects else None
    return [
        make_reader(spec, text_key=options.text_key, id_key=options.id_key, limit=options.limit, progress=True),
        ScorePerplexity(scorer, reuse=reuse, max_chars=options.max_chars),
        ValidateDocuments(strict=options.strict, exclusion_writer=reject_writer),
        PerplexitySampler(strategy, stats_dir=str(out_dir / LOGS / TASK_STATS), seed=seed,
                          boundaries=boundaries, use_id=options.id_key is not None),
        ShardWriter(str(out_dir / DATA_SUBDIR), text_key=options.text_key),
    ]


def _check_run_config(out_dir: Path, config: dict, provenance: dict, rejects: bool) -> None:
    """Refuse to resume into an output directory made by another configuration (mixed shards).

    run.json records the configuration and its key hash (``bertin_bench.markers``): the same
    configuration resumes -- datatrove skips the completed tasks -- and another one is refused."""
    path = out_dir / "run.json"
    if not path.exists():
        write_json_atomic(path, {"config": config, "key_hash": markers.key_hash(config), "created": provenance,
                                 "rejects": rejects})
        return
    record = read_json(path)
    if markers.matches(record, config) or ("key_hash" not in record and record.get("config") == config):
        return  # the second test: a run.json written before the key hash was recorded
    old = record.get("config") or {}
    changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
    raise SampleError(
        f"{out_dir} already holds a run with another configuration (differs in: {', '.join(changed) or 'its key'}); "
        "use a new --out, or delete it to start over"
    )


@contextlib.contextmanager
def _one_run(out_dir, command: str):
    """Hold the output lock of ``out_dir`` for the block; another live run there is a SampleError
    (one line naming its pid, host and command)."""
    try:
        with output_lock(out_dir, f"bench sample {command}"):
            yield
    except OutputLocked as err:
        raise SampleError(str(err)) from None


def _logging_dir(out_dir: Path, options: ScoreOptions) -> str:
    """datatrove's state lives in OUT/logs, where `bench sample stats OUT` and a resumed run find it."""
    logs = out_dir / LOGS
    given = options.executor.logging_dir
    if given is not None and Path(given).resolve() != logs.resolve():
        raise SampleError(f"executor logging_dir {given}: a sampling pass keeps its logs in {logs} "
                          "(leave logging_dir unset)")
    return str(logs)


def _execute(input, out_dir, options: ScoreOptions, *, scorer, strategy, boundaries, seed, reuse, extra_config,
             plot) -> dict:
    out_dir = Path(out_dir)
    spec = parse_input(input)
    scorer.check_normalization()  # a vocabulary that does not fit the normalization: told before any work
    identity = scorer.identity()
    if boundaries is not None:
        boundaries.check(identity)
    reuse = reuse and stored_perplexity_ok(spec, identity)
    config = {
        "input": spec.describe(), "input_files": list(spec.files), "text_key": options.text_key,
        "id_key": options.id_key, "scorer": identity, "strategy": strategy.params() if strategy else None,
        "boundaries": list(boundaries.as_tuple()) if boundaries else None, "seed": seed,
        "tasks": options.executor.tasks, "limit": options.limit, "max_chars": options.max_chars,
        "strict": options.strict, **extra_config,
    }
    config = json.loads(json.dumps(config, default=str))  # as it reads back from run.json
    logging_dir = _logging_dir(out_dir, options)
    provenance = environment()  # once: reading package metadata costs ~0.1 s
    _check_run_config(out_dir, config, provenance, options.rejects)
    write_json_atomic(out_dir / SCORER_MANIFEST, {**identity, "paths": scorer.describe()})
    pipeline = build_pipeline(spec, out_dir, options, scorer=scorer, strategy=strategy, boundaries=boundaries,
                              seed=seed, reuse=reuse)
    exe = make_executor(pipeline, options.executor, logging_dir)
    done = exe.world_size - len(exe.get_incomplete_ranks())
    if done:
        log.warning("%s: resuming, %d of %d tasks already complete", out_dir, done, exe.world_size)
        _warn_rejects_not_written(out_dir, options, done, exe.world_size)
    try:
        exe.run()
    except BaseException:
        _drop_partials(out_dir, options)
        raise
    stats = aggregate(out_dir, executor=exe, config=config, strategy=strategy, boundaries=boundaries,
                      scorer=scorer, reused_scores=reuse, plot=plot, provenance=provenance)
    _check_text_key(spec, options, stats)
    return stats


def _drop_partials(out_dir: Path, options: ScoreOptions) -> None:
    """After a local run failed: datatrove's pool has terminated the other tasks, which could not
    remove their ``.partial`` shards; nothing else writes here (we hold the lock), so remove them.
    Not for Slurm or Ray, whose tasks may still be running elsewhere (each failing task removes its
    own, ``ShardWriter``)."""
    if options.executor.kind != "local":
        return
    for sub in (DATA_SUBDIR, "rejects"):
        for partial in (out_dir / sub).glob(".*.partial"):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()


def _warn_rejects_not_written(out_dir: Path, options: ScoreOptions, done: int, tasks: int) -> None:
    """--rejects is not part of the run's configuration (it changes no kept document), so a rerun
    with it resumes the run; but the tasks already complete do not run again and wrote no rejects.
    Say so rather than ignore the flag. ``run.json["rejects"]`` records whether the first run had it."""
    if options.rejects and not read_json(out_dir / "run.json").get("rejects"):
        log.warning("%s: --rejects: %d of %d tasks were already complete from a run without --rejects and are not "
                    "rerun, so their skipped records are not in %s; run again into a new --out with --rejects to "
                    "get every reject", out_dir, done, tasks, out_dir / "rejects")


def _check_text_key(spec: InputSpec, options: ScoreOptions, stats: dict) -> None:
    """No valid document because no record has the text field: almost surely a wrong --text-key.
    Name the fields the records do have rather than exit 0 with an empty output."""
    if stats.get("status") != "complete" or stats["seen"] or not stats["skipped"].get("missing_text"):
        return
    raise SampleError(no_text_field_message(spec, options.text_key, stats["skipped"]["missing_text"]))


def run_score(input, out_dir, *, scorer, options: ScoreOptions | None = None) -> dict:
    """Score every document of ``input`` into ``out_dir/data`` shards (nothing dropped but bad input);
    returns the stats (also in ``out_dir/stats.json``; the histogram PNG only with ``options.plot``)."""
    options = options or ScoreOptions()
    input = parse_input(input)  # a missing input is refused before out_dir is created
    with _one_run(out_dir, "score"):
        return _execute(input, out_dir, options, scorer=scorer, strategy=None, boundaries=None, seed=0, reuse=False,
                        extra_config={"command": "score"}, plot=options.plot)


def run_sample(input, out_dir, *, sample: SampleOptions, scorer=None, options: ScoreOptions | None = None) -> dict:
    """Sample ``input`` into ``out_dir`` as ``sample`` says; returns the stats (also in
    ``out_dir/stats.json``, with the histogram PNG).

    Without ``sample.boundaries`` they are estimated on the first ``sample.boundary_docs``
    documents of the input (saved to ``out_dir/boundaries.json``). With ``target_fraction`` or
    ``target_docs`` the factor is calibrated on the boundary sample so the expected kept fraction
    hits the target; with ``target_tokens`` (whitespace words, the unit of ``tokens_kept``) it is
    calibrated on the sample's word-weighted perplexities so the expected kept fraction of the
    input's words hits it. ``scorer`` None: the default ``PerplexityScorer()``.
    """
    input = parse_input(input)  # a missing input is refused before out_dir is created
    with _one_run(out_dir, "run"):  # from the start: the boundaries below are written into out_dir too
        return _sample(input, out_dir, sample, scorer, options or ScoreOptions())


def _sample(input, out_dir, sample: SampleOptions, scorer, options: ScoreOptions) -> dict:
    # Here rather than at the top: they need numpy, which `bench sample score` does without (start-up).
    from sampling.boundaries import Boundaries, estimate_boundaries
    from sampling.scorer import PerplexityScorer
    from sampling.strategies import RandomStrategy, calibrate_factor, expected_fraction, make_strategy

    scorer = scorer or PerplexityScorer()
    if sample.target_tokens is not None and options.limit is not None:
        raise SampleError("--target-tokens counts the words of the whole input and cannot be combined with --limit")
    boundaries = sample.boundaries
    if isinstance(boundaries, (str, os.PathLike)):
        boundaries = Boundaries.load(boundaries)
    needs_sample = sample.strategy_name != "random"  # random's factor is the fraction itself: no perplexity sample
    saved = Path(out_dir) / "boundaries.json"
    if boundaries is None and needs_sample and saved.exists():  # a resumed run: same estimate as before
        boundaries = Boundaries.load(saved)
    if boundaries is None and needs_sample:
        log.info("no boundaries given: estimating them on the first %d documents", sample.boundary_docs)
        boundaries = estimate_boundaries(input, scorer=scorer, n_docs=sample.boundary_docs, text_key=options.text_key,
                                         max_chars=options.max_chars)
        boundaries.save(saved)
        boundaries.path = str(saved)
    if boundaries is not None:
        boundaries.check(scorer.identity())
        if not saved.exists():  # the run directory records the boundaries it used (plots, `stats`)
            boundaries.save(saved)
    strategy = sample.strategy
    if isinstance(strategy, str):
        strategy = make_strategy(strategy, boundaries=boundaries, factor=sample.factor, width=sample.width)
    target, target_fraction = None, sample.target_fraction
    if sample.target_docs is not None:
        total = count_documents(input)
        if options.limit is not None:  # --limit applies per task
            total = min(total, options.limit * options.executor.tasks)
        target_fraction = min(1.0, sample.target_docs / total)
        target = {"docs": sample.target_docs, "input_records": total}
    fraction_of = "fraction"  # what the target fraction counts: documents, or words
    if sample.target_tokens is not None:
        total_words = count_words(input, text_key=options.text_key, max_chars=options.max_chars)
        target_fraction = min(1.0, sample.target_tokens / total_words)
        target = {"tokens": sample.target_tokens, "input_words": total_words}
        fraction_of = "word_fraction"
    if target_fraction is not None:
        # The calibration sample: perplexities per document, or weighted by words for a word target.
        calibration = None if boundaries is None else (
            boundaries.word_sample() if sample.target_tokens is not None else boundaries.sample())
        # random keeps every document, hence every word, with the same probability: factor = fraction
        strategy = strategy.with_factor(target_fraction if isinstance(strategy, RandomStrategy)
                                        else calibrate_factor(strategy, calibration, target_fraction))
        target = {**(target or {}), fraction_of: target_fraction}
        if calibration is not None:
            target[f"expected_{fraction_of}_on_boundary_sample"] = expected_fraction(strategy, calibration)
    return _execute(input, out_dir, options, scorer=scorer, strategy=strategy, boundaries=boundaries,
                    seed=sample.seed, reuse=True, extra_config={"command": "run", "target": target}, plot=True)


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
