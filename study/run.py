"""The study's stages, in order: split -> score -> boundaries -> sample -> tokenizer -> pre-train
(every arm x pre-training seed, and the never-pre-trained floor) -> per-domain evaluation ->
benchmark -> report.

For each sampling strategy (and optionally the unsampled corpus as a control) the study

1. scores the corpus once, then samples it with ONE set of perplexity boundaries and a common
   target fraction per strategy,
2. pre-trains a model from scratch on each sample with the same model, tokenizer, seed and the
   same number of training tokens (BERTIN's comparison was confounded: its 50M-document cap read
   different stretches of mC4 for each strategy; here every model sees exactly ``train_tokens``,
   re-reading its sample for more epochs when the sample is smaller),
3. fine-tunes every model on every task with N seeds,
4. writes the leaderboard, the comparison with significance, and the figures.

Each stage's output records the *key* of what it depends on (:mod:`bertin_bench.markers`); a
rerun skips a stage whose key matches and redoes one whose key changed, so a changed config redoes
that stage and everything downstream of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import itertools
import json
import logging
import shutil
import time
from pathlib import Path

import click

from bertin_bench import markers, paths
from bertin_bench.io import atomic_path
from bertin_bench.locks import output_lock
from study.config import CONTROL, FLOOR, StudyConfig
from study.layout import MARK, Layout

log = logging.getLogger("bench.study")


def fresh(out: Path) -> None:
    """Remove a stale stage output (made from another config): only ever a directory of the work
    dir that a study stage created, never a user's path."""
    if out.exists():
        log.warning("config changed: redoing %s", out)
        shutil.rmtree(out)


@contextlib.contextmanager
def compilation_cache(directory: Path):
    """Keep XLA's compiled programs on disk while the study runs. Every arm has the same
    architecture, so each fine-tuning run after the first of its task and padded length reuses
    the programs instead of recompiling (measured: 20 s of a 45 s capped CPU run). Results are
    unchanged: the cache holds the very executable a compile would produce. A cache directory set
    by ``JAX_COMPILATION_CACHE_DIR`` wins. The previous settings come back afterwards, so a
    caller's process is not left writing into this study's directory."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    before = {name: getattr(jax.config, name) for name in names}
    if not before["jax_compilation_cache_dir"]:
        jax.config.update("jax_compilation_cache_dir", str(directory))
    # JAX caches only compiles over 1 s by default; the evaluation steps take less, yet add up.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    cc.reset_cache()  # JAX reads the setting once, at its first compile: make it read it again
    try:
        yield
    finally:
        for name, value in before.items():
            jax.config.update(name, value)
        cc.reset_cache()


def sample_summary(stats: dict) -> dict:
    """The parts of a sampling stats.json a study reports (kept fraction, tokens, per source)."""
    keep = ("seen", "kept", "kept_fraction", "expected_fraction", "tokens_kept", "skipped", "strategy",
            "by_source", "histogram")
    return {k: stats[k] for k in keep if k in stats}


class Study:
    def __init__(self, cfg: StudyConfig, echo=click.echo):
        self.cfg = cfg
        self.echo = echo
        self.layout = Layout(cfg.work, cfg.results)

    # -- keys: what each stage's output depends on (a change redoes it and what follows) -------

    def corpus_key(self) -> dict:
        c = self.cfg.corpus
        key = {"input": c.input, "text_key": c.text_key, "limit": c.limit, "heldout_docs": c.heldout_docs}
        if c.heldout_per_source:  # (absent otherwise, so older keys stay valid)
            key.update(heldout_per_source=c.heldout_per_source, source_key=c.source_key)
        return key

    def score_key(self) -> dict:
        return {"corpus": self.corpus_key(), "lm": dataclasses.asdict(self.cfg.lm)}

    def boundaries_key(self) -> dict:
        # the first n documents of the corpus, scored with the LM (not the head of the scored shards)
        return {"corpus_head": self.score_key(), "n": self.cfg.sampling.boundary_docs}

    def sample_key(self, arm: str) -> dict:
        s = self.cfg.sampling
        return {"boundaries": self.boundaries_key(), "arm": arm, "target_fraction": s.target_fraction, "seed": s.seed}

    def tokenizer_key(self) -> dict:
        t = self.cfg.tokenizer
        if t.path:
            return {"path": t.path}
        return {"train_on": [self.sample_key(a) for a in self.cfg.sampled_arms], "vocab_size": t.vocab_size}

    def pretrain_key(self, arm: str, seed: int) -> dict:
        p = self.cfg.pretraining
        common = {"tokenizer": self.tokenizer_key(), "preset": p.preset, "overrides": list(p.overrides), "seed": seed}
        if arm == FLOOR:
            return {"untrained": True, **common}
        return {"sample": self.sample_key(arm), "heldout": self.corpus_key(), "train_tokens": p.train_tokens, **common}

    def eval_key(self, arm: str, seed: int) -> dict:
        return {"model": self.pretrain_key(arm, seed), "documents": self.eval_docs_key(),
                "evaluation": dataclasses.asdict(self.cfg.evaluation)}

    def eval_docs_key(self) -> dict:
        e = self.cfg.evaluation
        return {"heldout": self.corpus_key(), "wiki": e.wiki, "wiki_docs": e.wiki_docs}

    # -- inputs ------------------------------------------------------------------------------

    def source_input(self) -> str:
        return paths.resolve_spec(self.cfg.corpus.input)

    def corpus_input(self) -> str:
        """What every arm samples from: the input itself, or what the held-out split and the
        limit leave of it."""
        c = self.cfg.corpus
        if c.limit is None and not c.heldout_docs:
            return self.source_input()
        self.corpus_split()
        return str(self.layout.corpus_file)

    def lm_dir(self) -> str:
        return paths.resolve_spec(self.cfg.lm.model_dir)

    def tokenizer_path(self) -> str:
        t = self.cfg.tokenizer
        return t.path if t.path else str(self.layout.tokenizer_dir)

    def pipeline_options(self):
        """How the sampling pipeline runs: the same for the scoring and every arm's sample."""
        from bertin_bench.executor import ExecutorOptions
        from sampling.options import ScoreOptions

        s = self.cfg.sampling
        return ScoreOptions(text_key=self.cfg.corpus.text_key,
                            executor=ExecutorOptions(tasks=s.tasks, workers=s.workers))

    def scorer(self):
        from sampling.scorer import PerplexityScorer

        return PerplexityScorer(self.lm_dir(), mode=self.cfg.lm.mode)

    # -- 0. the held-out split -----------------------------------------------------------------

    def corpus_split(self) -> Path:
        """``heldout.jsonl.gz`` (the first ``heldout_docs`` records) and ``corpus.jsonl.gz`` (the
        next ``limit`` records, or all the rest) of a local JSONL input, copied verbatim.

        A split on disk also keeps "the first N documents" independent of the number of tasks
        (the sampling stage's ``--limit`` is per task, datatrove's convention).
        """
        c = self.cfg.corpus
        out, key = self.layout.corpus_dir, self.corpus_key()
        if markers.is_done(out, key, MARK):
            return out
        fresh(out)
        source = Path(self.source_input())
        if not source.is_file() or not source.name.endswith((".jsonl", ".jsonl.gz")):
            raise ValueError(f"corpus.heldout_docs / heldout_per_source / limit need a single local .jsonl(.gz) "
                             f"input, got {c.input} (set them to 0 / null for other inputs)")
        opener = gzip.open if source.name.endswith(".gz") else open
        with opener(source, "rb") as src, \
                atomic_path(self.layout.heldout_file) as held_tmp, atomic_path(self.layout.corpus_file) as rest_tmp, \
                gzip.open(held_tmp, "wb", compresslevel=3) as held, gzip.open(rest_tmp, "wb", compresslevel=3) as rest:
            if c.heldout_per_source:
                counts = _split_by_source(src, held, rest, per_source=c.heldout_per_source, limit=c.limit,
                                          source_key=c.source_key, where=source)
            else:
                counts = {"heldout": _copy(itertools.islice(src, c.heldout_docs), held)}
                counts["corpus"] = _copy(itertools.islice(src, c.limit), rest)
        if c.heldout_docs and not c.heldout_per_source and counts["heldout"] < c.heldout_docs:
            raise ValueError(f"{source} has only {counts['heldout']} records for corpus.heldout_docs={c.heldout_docs}")
        markers.mark_done(out, key, {"records": counts, "source": str(source)}, name=MARK)
        return out

    def heldout_docs(self) -> int:
        """How many documents the held-out file holds (every arm's common evaluation text). Before
        the split exists (a --dry-run) the configured count, a lower bound with heldout_per_source."""
        c = self.cfg.corpus
        if markers.is_done(self.layout.corpus_dir, self.corpus_key(), MARK):
            return markers.summary(self.layout.corpus_dir, MARK)["records"]["heldout"]
        return c.heldout_per_source or c.heldout_docs

    # -- 1. score once, then boundaries -------------------------------------------------------

    def scored(self) -> Path:
        """Score the corpus once; every arm then samples from these shards, reusing the stored
        perplexities (scoring is the expensive part: on mC4 it is most of the sampling cost)."""
        from sampling.pipeline import run_score

        out, key = self.layout.scored_dir, self.score_key()
        if not markers.is_done(out, key, MARK):
            fresh(out)
            self.echo(f"[1/5] score {self.cfg.corpus.input} with {self.cfg.lm.model_dir} ({self.cfg.lm.mode})")
            stats = run_score(self.corpus_input(), out, scorer=self.scorer(), options=self.pipeline_options())
            markers.mark_done(out, key, {k: stats.get(k) for k in ("records", "seen", "skipped")}, name=MARK)
        return out

    def boundaries(self):
        from sampling.boundaries import Boundaries, estimate_boundaries

        out, key, path = self.layout.boundaries_dir, self.boundaries_key(), self.layout.boundaries_file
        if markers.is_done(out, key, MARK):
            return Boundaries.load(path)
        fresh(out)
        self.echo(f"[1/5] boundaries from the first {self.cfg.sampling.boundary_docs:,} documents")
        # The first documents of the corpus, not of the scored shards: which documents a shard holds
        # depends on the number of tasks, and the boundaries (hence every arm's kept set) must not.
        # Re-scoring them costs seconds (10k documents at ~5k docs/s).
        b = estimate_boundaries(self.corpus_input(), scorer=self.scorer(), n_docs=self.cfg.sampling.boundary_docs,
                                text_key=self.cfg.corpus.text_key)
        b.save(path)
        markers.mark_done(out, key, {"q1": b.q1, "q2": b.q2, "q3": b.q3}, name=MARK)
        return b

    # -- 2. samples --------------------------------------------------------------------------

    def sample(self, arm: str, boundaries) -> dict:
        from sampling.options import SampleOptions
        from sampling.pipeline import run_sample
        from sampling.strategies import make_strategy

        out, key = self.layout.sample_dir(arm), self.sample_key(arm)
        if markers.is_done(out, key, MARK):
            return markers.summary(out, MARK)
        fresh(out)
        s = self.cfg.sampling
        if arm == CONTROL:
            # The control keeps every document: same pipeline, same shard format, p = 1.
            strategy, target = make_strategy("random", factor=1.0), None
        else:
            strategy, target = make_strategy(arm, boundaries), s.target_fraction
        self.echo(f"[2/5] sample {arm}: target fraction {target if target else 1.0}")
        stats = run_sample(str(self.scored()), out, scorer=self.scorer(), options=self.pipeline_options(),
                           sample=SampleOptions(strategy=strategy, boundaries=boundaries, target_fraction=target,
                                                seed=s.seed))
        markers.mark_done(out, key, sample_summary(stats), name=MARK)
        return markers.summary(out, MARK)

    # -- 3. tokenizer + pre-training ---------------------------------------------------------

    def tokenizer(self) -> None:
        if self.cfg.tokenizer.path:
            return
        from pretraining.tokenizer import train_bpe

        out, key = self.layout.tokenizer_dir, self.tokenizer_key()
        if markers.is_done(out, key, MARK):
            return
        fresh(out)
        files = [str(self.layout.sample_data(a)) for a in self.cfg.sampled_arms]
        self.echo(f"[3/5] one byte-level BPE ({self.cfg.tokenizer.vocab_size:,}) on the union of the samples")
        train_bpe(files, out, vocab_size=self.cfg.tokenizer.vocab_size)
        markers.mark_done(out, key, {"vocab_size": self.cfg.tokenizer.vocab_size}, name=MARK)

    def pretrain_config(self, arm: str, seed: int):
        """The typed pre-training config of one (arm, seed): the preset and the study's overrides,
        then the unit's paths, seed and the token budget set on the objects (never as strings to
        re-parse, so a work dir with a comma, a space or a '#' is just a path). Everything but the
        data and the seed is identical across units."""
        from pretraining.config import load_config

        p, lay = self.cfg.pretraining, self.layout
        base = load_config(p.preset, p.overrides)
        # the floor trains on nothing; its config names the first sample only to stay valid
        data_arm = arm if arm != FLOOR else self.cfg.sampled_arms[0]
        data = dataclasses.replace(base.data, train_files=[str(lay.sample_data(data_arm))], seed=seed)
        if self.cfg.corpus.heldout_docs or self.cfg.corpus.heldout_per_source:
            data = dataclasses.replace(data, eval_files=[str(lay.heldout_file)], eval_docs=self.heldout_docs())
        # a BPE the study trains has the study's vocabulary size; the embedding must match it
        model = base.model if self.cfg.tokenizer.path else dataclasses.replace(
            base.model, vocab_size=self.cfg.tokenizer.vocab_size)
        cfg = dataclasses.replace(
            base,
            name=self.cfg.model_name(arm, seed),
            model=model,
            out_dir=str(lay.run_dir(arm, seed)),
            data=data,
            tokenizer=dataclasses.replace(base.tokenizer, path=self.tokenizer_path()),
            training=dataclasses.replace(base.training, max_tokens=p.train_tokens, seed=seed),
        )
        cfg.validate()
        return cfg

    def pretrain(self, arm: str, seed: int) -> dict:
        """Train and export one (arm, seed) -- or, for the floor, export its initialisation."""
        from pretraining.checkpoint import export_hf, export_untrained
        from pretraining.train import train

        out, key = self.layout.model_stage_dir(arm, seed), self.pretrain_key(arm, seed)
        if markers.is_done(out, key, MARK):
            return markers.summary(out, MARK)
        fresh(out)
        cfg = self.pretrain_config(arm, seed)
        model_dir = self.layout.model_dir(arm, seed)
        if arm == FLOOR:
            self.echo(f"[3/5] floor {arm} s{seed}: the initialisation of seed {seed}, never pre-trained")
            export_untrained(cfg, model_dir)
            summary = {"steps": 0, "tokens_seen": 0, "untrained": True}
        else:
            self.echo(f"[3/5] pre-train {arm} s{seed}: {cfg.total_steps:,} steps x {cfg.training.batch_size} x "
                      f"{cfg.training.seq_len} = {self.cfg.pretraining.train_tokens:,} tokens budget")
            summary = train(cfg, resume=True)
            export_hf(summary["final_checkpoint"], model_dir)
        summary = {**summary, "run_dir": str(self.layout.run_dir(arm, seed)), "model_dir": str(model_dir)}
        markers.mark_done(out, key, summary, name=MARK)
        return summary

    # -- 4. per-domain evaluation ----------------------------------------------------------------

    def eval_documents(self) -> list[dict]:
        """The documents of the per-domain evaluation, in a fixed order: the held-out documents
        (each with its source) and the first Wikipedia paragraphs (source ``wikipedia``)."""
        e, c, path = self.cfg.evaluation, self.cfg.corpus, self.layout.eval_docs_file
        key = self.eval_docs_key()
        if not markers.is_done(path.parent, key, "documents.json"):
            self.corpus_split()
            docs = []
            with gzip.open(self.layout.heldout_file, "rt", encoding="utf-8") as f:
                for line in f:
                    rec = json.loads(line)
                    docs.append({"source": str(rec.get(c.source_key) or "unknown"), "text": rec[c.text_key]})
            if e.wiki:
                wiki = paths.resolve(e.wiki)
                with open(wiki, encoding="utf-8") as f:
                    lines = (ln.strip() for ln in f)
                    docs += [{"source": "wikipedia", "text": t} for t in itertools.islice(filter(None, lines), e.wiki_docs)]
            with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
                for d in docs:
                    f.write(json.dumps(d, ensure_ascii=False) + "\n")
            markers.mark_done(path.parent, key, {"documents": len(docs)}, name="documents.json")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def evaluate(self, arm: str, seed: int):
        """Per-document MLM statistics (summed loss, predicted tokens, correct) of one model on the
        evaluation documents, with the same masks for every model."""
        import numpy as np

        from pretraining.evaluate import mlm_document_stats

        out, key = self.layout.eval_dir(arm, seed), self.eval_key(arm, seed)
        stats_file = out / "doc_stats.npy"
        if markers.is_done(out, key, MARK):
            return np.load(stats_file)
        fresh(out)
        e = self.cfg.evaluation
        docs = self.eval_documents()
        self.echo(f"[4/5] evaluate {arm} s{seed} on {len(docs):,} documents by source")
        stats = mlm_document_stats(self.layout.model_dir(arm, seed), [d["text"] for d in docs], seq_len=e.seq_len,
                                   max_blocks_per_doc=e.max_blocks_per_doc, seed=e.mask_seed, batch_size=e.batch_size)
        with atomic_path(stats_file) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, stats)
        markers.mark_done(out, key, {"documents": len(docs)}, name=MARK)
        return stats

    # -- 4. benchmark ------------------------------------------------------------------------

    def benchmark(self, arm: str, seed: int) -> list[Path]:
        from benchmark.runner import run_benchmark

        b = self.cfg.benchmark
        self.echo(f"[5/5] benchmark {arm} s{seed}: {len(b.tasks)} tasks x {b.seeds} fine-tuning seeds")
        return run_benchmark(str(self.layout.model_dir(arm, seed)), b.tasks,
                             model_name=self.cfg.model_name(arm, seed), **self.benchmark_settings())

    def benchmark_settings(self) -> dict:
        """What every fine-tuning run of the study shares, serial or on an executor. Runs done with
        this model (content hash) and setting are skipped; a retrained model or a changed benchmark
        config redoes exactly the runs it made stale."""
        b = self.cfg.benchmark
        return dict(seeds=b.seeds, results_dir=self.layout.results, overrides=b.overrides or None,
                    limit_train=b.limit_train, limit_eval=b.limit_eval, redo_stale=True)

    @property
    def serial(self) -> bool:
        """Run every unit here, one after another (the default executor: local, 1 worker)?"""
        e = self.cfg.executor
        return e.kind == "local" and e.workers == 1

    def dispatch_pretraining(self) -> bool:
        """Pre-train the (arm, seed) units still to do on the study's executor, unless it is
        serial (then :meth:`pretrain` trains each in turn). True: only submitted (Slurm)."""
        todo = [u for u in self.cfg.units if u[0] != FLOOR  # a floor is an export: seconds, here
                and not markers.is_done(self.layout.model_stage_dir(*u), self.pretrain_key(*u), MARK)]
        if self.serial or not todo:
            return False
        from study.dispatch import pretrain_units

        return pretrain_units(self, todo)

    def benchmark_all(self) -> bool:
        """Every model on every task and fine-tuning seed: here one by one, or as
        :func:`benchmark.executors.run_matrix`'s units on the study's executor. True: only
        submitted (Slurm)."""
        if self.serial:
            for unit in self.cfg.units:
                self.benchmark(*unit)
            return False
        from benchmark.executors import run_matrix
        from study.dispatch import shared_compilation_cache

        b = self.cfg.benchmark
        models = [(str(self.layout.model_dir(*u)), self.cfg.model_name(*u)) for u in self.cfg.units]
        self.echo(f"[5/5] benchmark: {len(models)} models x {len(b.tasks)} tasks x {b.seeds} fine-tuning seeds "
                  f"on the {self.cfg.executor.kind} executor")
        with shared_compilation_cache(self.layout.jax_cache):
            done = run_matrix(models, b.tasks, executor=self.cfg.executor, echo=self.echo, **self.benchmark_settings())
        return done.submitted

    def submitted(self, stage: str) -> dict:
        self.echo(f"study {self.cfg.name}: {stage} submitted; run the same `bench study` again when the jobs "
                  "are done to go on (finished units are skipped)")
        return {"submitted": stage}

    # -- the whole study ---------------------------------------------------------------------

    def run(self) -> dict:
        """Every stage in order, holding the work dir's lock: a second `bench study` on the same
        work dir refuses while this one lives (and is admitted the moment this one dies)."""
        with output_lock(self.layout.work, f"bench study {self.cfg.name}"):
            return self._run()

    def _run(self) -> dict:
        from study.report import write_report

        t0 = time.time()
        units = self.cfg.units
        # sample: one set of boundaries, every sampled arm from the same scored shards
        boundaries = self.boundaries()
        samples = {arm: self.sample(arm, boundaries) for arm in self.cfg.sampled_arms}
        # tokenizer: one for every arm (trained on the union of the samples, or given)
        self.tokenizer()
        # JAX stages after sampling, whose workers fork without JAX; one compile cache for all units
        with compilation_cache(self.layout.jax_cache):
            # pre-train: every (arm, seed) at the same token budget; the floor is exported untrained
            if self.dispatch_pretraining():
                return self.submitted("pre-training")
            pretrained = {unit: self.pretrain(*unit) for unit in units}
            # evaluate: per-domain MLM loss of every model on the same documents and masks
            doc_stats = {unit: self.evaluate(*unit) for unit in units} if self.cfg.evaluation.by_source else {}
            # benchmark: every model on every task and fine-tuning seed
            if self.benchmark_all():
                return self.submitted("fine-tuning")
        # report: leaderboard, Multi-Bootstrap comparisons, per-domain tables, figures, study.json
        docs = self.eval_documents() if doc_stats else []
        return write_report(self, boundaries, samples, pretrained, doc_stats, docs, seconds=time.time() - t0)


def _copy(lines, dst) -> int:
    n = 0
    for line in lines:
        dst.write(line)
        n += 1
    return n


def _split_by_source(src, held, rest, *, per_source: int, limit: int | None, source_key: str, where) -> dict:
    """The first ``per_source`` records of each source go to ``held``; the next ``limit`` of the
    others (all when None) to ``rest``, verbatim and in file order."""
    taken: dict[str, int] = {}
    counts = {"heldout": 0, "corpus": 0}
    for lineno, line in enumerate(src, 1):
        try:
            source = str(json.loads(line).get(source_key) or "unknown")
        except ValueError as err:
            raise ValueError(f"{where}:{lineno}: invalid JSON ({err})") from None
        if taken.get(source, 0) < per_source:
            taken[source] = taken.get(source, 0) + 1
            held.write(line)
            counts["heldout"] += 1
        elif limit is None or counts["corpus"] < limit:
            rest.write(line)
            counts["corpus"] += 1
    counts["heldout_by_source"] = dict(sorted(taken.items()))
    return counts
