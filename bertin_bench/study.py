"""The strategy study end to end: corpus -> sample -> pre-train -> benchmark -> leaderboard.

For each sampling strategy (and optionally the unsampled corpus as a control) the study

1. scores the corpus once, then samples it with ONE set of perplexity boundaries and a common
   target fraction per strategy,
2. pre-trains a model from scratch on each sample with the same model, tokenizer, seed and the
   same number of training tokens (BERTIN's comparison was confounded: its 50M-document cap read
   different stretches of mC4 for each strategy; here every model sees exactly ``train_tokens``,
   re-reading its sample for more epochs when the sample is smaller),
3. fine-tunes every model on every task with N seeds,
4. writes the leaderboard, the comparison with significance, and the figures.

Stages talk through files under ``work_dir`` (large: shards, checkpoints; not committed) and
``results_dir`` (small: result JSONs, tables, figures; committed for published studies). A stage is
skipped when its output exists and its recorded config hash matches; a changed config redoes that
stage and everything downstream of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import click

from bertin_bench import config as typed_config
from bertin_bench import paths
from bertin_bench.io import atomic_path, read_json, write_json_atomic
from bertin_bench.provenance import environment, hash_jsonable

log = logging.getLogger("bench.study")

STUDY_DIR = Path(__file__).resolve().parent.parent / "configs" / "study"
CONTROL = "full"  # name of the unsampled-corpus control arm
STAGE_FILE = "study_stage.json"


# ----------------------------------------------------------------------------------- config

@dataclass
class CorpusConfig:
    # A file, directory, glob, or hf://DATASET[:CONFIG][@SPLIT]; data:... is in the data directory.
    input: str = "data:web_es/web_es_mix.jsonl.gz"
    text_key: str = "text"
    # The first N documents are held out of every sample and are the common evaluation text of
    # every arm's pre-training, so held-out losses compare across strategies (0: each arm holds
    # out the start of its own sample, which is NOT comparable: a stepwise sample is easier text).
    heldout_docs: int = 500
    # Then use only the next N documents (null: all). Every arm samples from the same N documents.
    limit: int | None = None
    # Size of the corpus, for --dry-run estimates when it cannot be counted (a streamed Hub corpus).
    approx_docs: int | None = None
    approx_tokens_per_doc: float | None = None


@dataclass
class LMConfig:
    model_dir: str = "data:kenlm_es"
    # lines: CCNet normalization per line (default); ccnet: bit-compatible with CCNet/edugp;
    # raw: what BERTIN ran on mC4 (no normalization, no sentencepiece).
    mode: str = "lines"


@dataclass
class SamplingConfig:
    strategies: list[str] = field(default_factory=lambda: ["random", "stepwise", "gaussian"])
    # Also pre-train on the unsampled corpus (the "full" arm) at the same token budget.
    control: bool = False
    target_fraction: float = 0.3
    # Documents used to estimate the quartiles and calibrate each strategy's factor.
    boundary_docs: int = 10_000
    seed: int = 0
    tasks: int = 2
    workers: int = 2


@dataclass
class TokenizerStudyConfig:
    # An existing tokenizer (e.g. BERTIN's), or null to train ONE byte-level BPE on the union of
    # the samples, shared by every arm (a per-arm tokenizer would confound the comparison).
    path: str | None = "data:tokenizers/bertin-roberta-base-spanish"
    vocab_size: int = 50265


@dataclass
class PretrainStudyConfig:
    preset: str = "tiny"
    # Dotted overrides applied to the preset, identical for every arm.
    overrides: list[str] = field(default_factory=list)
    # The equal token budget: every arm trains ceil(train_tokens / (batch * seq_len)) steps.
    train_tokens: int = 1_000_000


@dataclass
class BenchmarkStudyConfig:
    tasks: list[str] = field(default_factory=lambda: ["pos_conll2002_es", "ner_conll2002_es", "pawsx_es", "xnli_es"])
    seeds: int = 3
    limit_train: int | None = None
    limit_eval: int | None = None
    # Hyperparameter overrides for every task (e.g. {epochs: 2}).
    overrides: dict[str, Any] = field(default_factory=dict)
    # The task group whose average the leaderboard reports (empty when a task is missing).
    group: str = "bertin"


@dataclass
class StudyConfig:
    name: str = "study"
    # Large artifacts (shards, checkpoints, exported models): never committed.
    work_dir: str = "runs/study-{name}"
    # Small published artifacts (result JSONs, leaderboard, comparison, figures).
    results_dir: str = "results/studies/{name}"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    tokenizer: TokenizerStudyConfig = field(default_factory=TokenizerStudyConfig)
    pretraining: PretrainStudyConfig = field(default_factory=PretrainStudyConfig)
    benchmark: BenchmarkStudyConfig = field(default_factory=BenchmarkStudyConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def work(self) -> Path:
        return Path(self.work_dir.format(name=self.name))

    @property
    def results(self) -> Path:
        return Path(self.results_dir.format(name=self.name))

    @property
    def arms(self) -> list[str]:
        return list(self.sampling.strategies) + ([CONTROL] if self.sampling.control else [])

    def model_name(self, arm: str) -> str:
        return f"{self.name}-{arm}"

    def validate(self) -> None:
        from sampling.strategies import STRATEGIES

        errors = []
        unknown = [s for s in self.sampling.strategies if s not in STRATEGIES]
        if unknown:
            errors.append(f"sampling.strategies: unknown {unknown}; choose from {sorted(STRATEGIES)}")
        if len(set(self.sampling.strategies)) != len(self.sampling.strategies):
            errors.append("sampling.strategies has duplicates")
        if not 0 < self.sampling.target_fraction <= 1:
            errors.append(f"sampling.target_fraction must be in (0, 1], got {self.sampling.target_fraction}")
        if self.pretraining.train_tokens < 1:
            errors.append("pretraining.train_tokens must be >= 1")
        if self.benchmark.seeds < 1:
            errors.append("benchmark.seeds must be >= 1")
        if errors:
            raise ValueError("invalid study config:\n  " + "\n  ".join(errors))


def load_study(name_or_path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """A study preset name (``demo``/``small``/``base``: configs/study/NAME.yaml) or a YAML path."""
    path = typed_config.resolve_preset(name_or_path, STUDY_DIR, kind="study")
    cfg = typed_config.load(StudyConfig, path, overrides, defaults={"name": path.stem})
    cfg.validate()
    return cfg


# ------------------------------------------------------------------------------ stage marks

def _stage_done(out: Path, key: dict) -> bool:
    """True when ``out`` holds a completed stage made from exactly ``key``."""
    mark = out / STAGE_FILE
    return mark.is_file() and read_json(mark).get("key_hash") == hash_jsonable(key)


def _mark_stage(out: Path, key: dict, summary: dict) -> None:
    write_json_atomic(out / STAGE_FILE, {"key_hash": hash_jsonable(key), "key": key, "summary": summary,
                                         "finished": environment()["date"]})


def _stage_summary(out: Path) -> dict:
    return read_json(out / STAGE_FILE)["summary"]


def _fresh(out: Path) -> None:
    """Remove a stale stage output (made from another config); only ever inside the work dir."""
    if out.exists():
        log.warning("config changed: redoing %s", out)
        shutil.rmtree(out)


# ----------------------------------------------------------------------------------- stages


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


class Study:
    def __init__(self, cfg: StudyConfig, echo=click.echo):
        self.cfg = cfg
        self.echo = echo
        self.work = cfg.work
        self.results = cfg.results

    # -- keys: what each stage's output depends on (a change redoes it and what follows) -------

    def corpus_key(self) -> dict:
        c = self.cfg.corpus
        return {"input": c.input, "text_key": c.text_key, "limit": c.limit, "heldout_docs": c.heldout_docs}

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
        return {"train_on": [self.sample_key(a) for a in self.cfg.arms], "vocab_size": t.vocab_size}

    def pretrain_overrides(self, arm: str) -> list[str]:
        """The preset overrides for one arm: everything but the data is identical across arms."""
        p = self.cfg.pretraining
        return [
            *p.overrides,
            f"name={self.cfg.model_name(arm)}",
            f"out_dir={self.work / 'models' / arm / 'run'}",
            f"data.train_files=[{self.work / 'samples' / arm / 'data'}]",
            f"training.max_tokens={p.train_tokens}",
            f"tokenizer.path={self.tokenizer_path()}",
            *([f"data.eval_files=[{self.work / 'corpus' / 'heldout.jsonl.gz'}]",
               f"data.eval_docs={self.cfg.corpus.heldout_docs}"] if self.cfg.corpus.heldout_docs else []),
        ]

    def pretrain_key(self, arm: str) -> dict:
        p = self.cfg.pretraining
        return {"sample": self.sample_key(arm), "tokenizer": self.tokenizer_key(), "preset": p.preset,
                "overrides": list(p.overrides), "train_tokens": p.train_tokens}

    # -- paths -------------------------------------------------------------------------------

    def source_input(self) -> str:
        return paths.resolve_spec(self.cfg.corpus.input)

    def corpus_input(self) -> str:
        """What every arm samples from: the input itself, or what the held-out split and the
        limit leave of it."""
        c = self.cfg.corpus
        if c.limit is None and not c.heldout_docs:
            return self.source_input()
        return str(self.corpus_split() / "corpus.jsonl.gz")

    def corpus_split(self) -> Path:
        """``heldout.jsonl.gz`` (the first ``heldout_docs`` records) and ``corpus.jsonl.gz`` (the
        next ``limit`` records, or all the rest) of a local JSONL input, copied verbatim.

        A split on disk also keeps "the first N documents" independent of the number of tasks
        (the sampling stage's ``--limit`` is per task, datatrove's convention).
        """
        import gzip
        import itertools

        c = self.cfg.corpus
        out = self.work / "corpus"
        key = self.corpus_key()
        if _stage_done(out, key):
            return out
        _fresh(out)
        source = Path(self.source_input())
        if not source.is_file() or not source.name.endswith((".jsonl", ".jsonl.gz")):
            raise ValueError(f"corpus.heldout_docs / corpus.limit need a single local .jsonl(.gz) input, got "
                             f"{c.input} (set corpus.heldout_docs: 0 and corpus.limit: null for other inputs)")
        opener = gzip.open if source.name.endswith(".gz") else open
        counts = {}
        with opener(source, "rb") as src:
            for name, n in (("heldout", c.heldout_docs), ("corpus", c.limit)):
                with atomic_path(out / f"{name}.jsonl.gz") as tmp, gzip.open(tmp, "wb", compresslevel=3) as dst:
                    counts[name] = 0
                    for line in itertools.islice(src, n):
                        dst.write(line)
                        counts[name] += 1
        if c.heldout_docs and counts["heldout"] < c.heldout_docs:
            raise ValueError(f"{source} has only {counts['heldout']} records for corpus.heldout_docs={c.heldout_docs}")
        _mark_stage(out, key, {"records": counts, "source": str(source)})
        return out

    def lm_dir(self) -> str:
        return paths.resolve_spec(self.cfg.lm.model_dir)

    def tokenizer_path(self) -> str:
        t = self.cfg.tokenizer
        return t.path if t.path else str(self.work / "tokenizer")

    def model_dir(self, arm: str) -> Path:
        return self.work / "models" / arm / "hf"

    # -- 1. score once, then boundaries -------------------------------------------------------

    def scorer(self):
        from sampling.scorer import PerplexityScorer

        return PerplexityScorer(self.lm_dir(), mode=self.cfg.lm.mode)

    def scored(self) -> Path:
        """Score the corpus once; every arm then samples from these shards, reusing the stored
        perplexities (scoring is the expensive part: on mC4 it is most of the sampling cost)."""
        from sampling.pipeline import run_score

        out = self.work / "scored"
        key = self.score_key()
        if not _stage_done(out, key):
            _fresh(out)
            s = self.cfg.sampling
            self.echo(f"[1/4] score {self.cfg.corpus.input} with {self.cfg.lm.model_dir} ({self.cfg.lm.mode})")
            stats = run_score(self.corpus_input(), out, scorer=self.scorer(), tasks=s.tasks, workers=s.workers,
                              text_key=self.cfg.corpus.text_key)
            _mark_stage(out, key, {k: stats.get(k) for k in ("records", "seen", "skipped")})
        return out

    def boundaries(self):
        from sampling.boundaries import Boundaries, estimate_boundaries

        out = self.work / "boundaries"
        key = self.boundaries_key()
        path = out / "boundaries.json"
        if _stage_done(out, key):
            return Boundaries.load(path)
        _fresh(out)
        self.echo(f"[1/4] boundaries from the first {self.cfg.sampling.boundary_docs:,} documents")
        # The first documents of the corpus, not of the scored shards: which documents a shard holds
        # depends on the number of tasks, and the boundaries (hence every arm's kept set) must not.
        # Re-scoring them costs seconds (10k documents at ~5k docs/s).
        b = estimate_boundaries(self.corpus_input(), scorer=self.scorer(), n_docs=self.cfg.sampling.boundary_docs,
                                text_key=self.cfg.corpus.text_key)
        b.save(path)
        _mark_stage(out, key, {"q1": b.q1, "q2": b.q2, "q3": b.q3})
        return b

    # -- 2. samples --------------------------------------------------------------------------

    def sample(self, arm: str, boundaries) -> dict:
        from sampling.pipeline import run_sample
        from sampling.strategies import make_strategy

        out = self.work / "samples" / arm
        key = self.sample_key(arm)
        if _stage_done(out, key):
            return _stage_summary(out)
        _fresh(out)
        s = self.cfg.sampling
        if arm == CONTROL:
            # The control keeps every document: same pipeline, same shard format, p = 1.
            strategy, target = make_strategy("random", factor=1.0), None
        else:
            strategy, target = make_strategy(arm, boundaries), s.target_fraction
        self.echo(f"[2/4] sample {arm}: target fraction {target if target else 1.0}")
        stats = run_sample(str(self.scored()), out, strategy=strategy, boundaries=boundaries,
                           target_fraction=target, seed=s.seed, scorer=self.scorer(), tasks=s.tasks,
                           workers=s.workers, text_key=self.cfg.corpus.text_key)
        _mark_stage(out, key, _sample_summary(stats))
        return _stage_summary(out)

    # -- 3. tokenizer + pre-training ---------------------------------------------------------

    def tokenizer(self) -> None:
        if self.cfg.tokenizer.path:
            return
        from pretraining.tokenizer import train_bpe

        out = self.work / "tokenizer"
        key = self.tokenizer_key()
        if _stage_done(out, key):
            return
        _fresh(out)
        files = [str(self.work / "samples" / a / "data") for a in self.cfg.arms]
        self.echo(f"[3/4] one byte-level BPE ({self.cfg.tokenizer.vocab_size:,}) on the union of the samples")
        train_bpe(files, out, vocab_size=self.cfg.tokenizer.vocab_size)
        _mark_stage(out, key, {"vocab_size": self.cfg.tokenizer.vocab_size})

    def pretrain_config(self, arm: str):
        from pretraining.config import load_config

        cfg = load_config(self.cfg.pretraining.preset, self.pretrain_overrides(arm))
        cfg.validate()
        return cfg

    def pretrain(self, arm: str) -> dict:
        """Train and export one arm; returns the training summary."""
        from pretraining.checkpoint import export_hf
        from pretraining.train import train

        out = self.work / "models" / arm
        key = self.pretrain_key(arm)
        if _stage_done(out, key):
            return _stage_summary(out)
        _fresh(out)
        cfg = self.pretrain_config(arm)
        self.echo(f"[3/4] pre-train {arm}: {cfg.total_steps:,} steps x {cfg.training.batch_size} x "
                  f"{cfg.training.seq_len} = {self.cfg.pretraining.train_tokens:,} tokens budget")
        summary = train(cfg, resume=True)
        export_hf(summary["final_checkpoint"], self.model_dir(arm))
        summary = {**summary, "run_dir": str(out / "run"), "model_dir": str(self.model_dir(arm))}
        _mark_stage(out, key, summary)
        return summary

    # -- 4. benchmark ------------------------------------------------------------------------

    def benchmark(self, arm: str) -> list[Path]:
        from benchmark.runner import run_benchmark

        b = self.cfg.benchmark
        self.echo(f"[4/4] benchmark {arm}: {len(b.tasks)} tasks x {b.seeds} seeds")
        # Runs done with this model (content hash) and setting are skipped; a retrained model or a
        # changed benchmark config redoes exactly the runs it made stale.
        return run_benchmark(str(self.model_dir(arm)), b.tasks, seeds=b.seeds, results_dir=self.results,
                             overrides=b.overrides or None, limit_train=b.limit_train, limit_eval=b.limit_eval,
                             model_name=self.cfg.model_name(arm), redo_stale=True)

    # -- the whole study ---------------------------------------------------------------------

    def run(self) -> dict:
        t0 = time.time()
        boundaries = self.boundaries()
        samples = {arm: self.sample(arm, boundaries) for arm in self.cfg.arms}
        self.tokenizer()
        with compilation_cache(self.work / "jax_cache"):  # after sampling: its workers fork without JAX
            pretrained = {arm: self.pretrain(arm) for arm in self.cfg.arms}
            for arm in self.cfg.arms:
                self.benchmark(arm)
        report = self.report(boundaries, samples, pretrained)
        report["seconds"] = round(time.time() - t0, 1)
        write_json_atomic(self.results / "study.json", report)
        return report

    def report(self, boundaries, samples: dict, pretrained: dict) -> dict:
        from benchmark.compare import compare_models
        from benchmark.leaderboard import build_leaderboard

        from bertin_bench import study_plots

        figures = self.results / "figures"
        # Only this study's arms: reported rows of full-size models would not be comparable.
        board = build_leaderboard(self.results, group=self.cfg.benchmark.group, include_reported=False)
        names = [self.cfg.model_name(a) for a in self.cfg.arms]
        comparison = compare_models(names, self.results, out_dir=self.results / "comparison") if len(names) > 1 else None
        figs = {
            "perplexity": study_plots.perplexity_histograms(samples, boundaries,
                                                            figures / "perplexity_by_strategy.png"),
            "sources": study_plots.kept_by_source(samples, figures / "kept_share_by_source.png"),
            "loss": study_plots.loss_curves({a: Path(p["run_dir"]) for a, p in pretrained.items()},
                                            figures / "pretraining_loss.png"),
            "scores": self.results / "comparison" / "compare.png" if comparison is not None else None,
        }
        return {
            "study": self.cfg.name,
            "config": self.cfg.to_dict(),
            "config_hash": hash_jsonable(self.cfg.to_dict()),
            "boundaries": {"q1": boundaries.q1, "q2": boundaries.q2, "q3": boundaries.q3},
            "samples": samples,
            "pretraining": {a: {k: v for k, v in p.items() if k not in ("run_dir", "model_dir", "final_checkpoint")}
                            for a, p in pretrained.items()},
            "leaderboard": str(self.results / "leaderboard.md"),
            "comparison": str(self.results / "comparison" / "compare.md") if comparison is not None else None,
            "figures": {k: str(v) for k, v in figs.items() if v},
            "provenance": environment(),
            "leaderboard_rows": len(board),
        }

    # -- dry run -----------------------------------------------------------------------------

    def plan(self) -> list[str]:
        """What the study would do, with token budgets and step counts, without doing it."""
        c, s, p, b = self.cfg.corpus, self.cfg.sampling, self.cfg.pretraining, self.cfg.benchmark
        lines = [f"study {self.cfg.name}: work dir {self.work}, results {self.results}",
                 f"corpus: {c.input}" + (f", first {c.heldout_docs:,} documents held out as every arm's common "
                                         f"evaluation text" if c.heldout_docs else "")
                 + (f", then {c.limit:,} documents" if c.limit else ""),
                 f"LM: {self.cfg.lm.model_dir} (mode {self.cfg.lm.mode}): score the corpus once "
                 f"[{'done' if _stage_done(self.work / 'scored', self.score_key()) else 'to do'}], "
                 f"boundaries from {s.boundary_docs:,} documents"]
        n_docs = c.limit or c.approx_docs
        for arm in self.cfg.arms:
            frac = 1.0 if arm == CONTROL else s.target_fraction
            kept = f"~{int(n_docs * frac):,} documents" if n_docs else "size known after sampling"
            if n_docs and c.approx_tokens_per_doc:
                kept += f", ~{n_docs * frac * c.approx_tokens_per_doc:,.0f} tokens"
            done = "done" if _stage_done(self.work / "samples" / arm, self.sample_key(arm)) else "to do"
            lines.append(f"  sample {arm:<9} keep {frac:.0%} -> {kept}  [{done}]")
        cfg = self.pretrain_config(self.cfg.arms[0])
        t = cfg.training
        per_step = t.batch_size * t.seq_len
        lines.append(f"tokenizer: {self.tokenizer_path()}" + ("" if self.cfg.tokenizer.path else
                     f" (trained once, vocab {self.cfg.tokenizer.vocab_size:,})"))
        lines.append(f"pre-training: preset {p.preset}, {cfg.model.num_hidden_layers} layers x {cfg.model.hidden_size} "
                     f"hidden, vocab {cfg.model.vocab_size:,}")
        lines.append(f"  budget {p.train_tokens:,} tokens per arm = {cfg.total_steps:,} steps x {t.batch_size} "
                     f"sequences x {t.seq_len} tokens ({per_step:,} tokens/step; warmup {cfg.schedule.warmup_steps:,})")
        if n_docs and c.approx_tokens_per_doc:
            epochs = p.train_tokens / (n_docs * s.target_fraction * c.approx_tokens_per_doc)
            lines.append(f"  ~{epochs:.2f} epochs over each {s.target_fraction:.0%} sample")
        for arm in self.cfg.arms:
            done = "done" if _stage_done(self.work / "models" / arm, self.pretrain_key(arm)) else "to do"
            lines.append(f"  pre-train {arm:<9} -> {self.model_dir(arm)}  [{done}]")
        lim = ""
        if b.limit_train or b.limit_eval:
            lim = f" (limits: train {b.limit_train}, eval {b.limit_eval})"
        lines.append(f"benchmark: {', '.join(b.tasks)} x {b.seeds} seeds x {len(self.cfg.arms)} models"
                     f" = {len(b.tasks) * b.seeds * len(self.cfg.arms)} fine-tuning runs{lim}")
        lines.append(f"outputs: {self.results}/leaderboard.md, comparison, figures/")
        return lines


def _sample_summary(stats: dict) -> dict:
    """The parts of a sampling stats.json a study reports (kept fraction, tokens, per source)."""
    keep = ("seen", "kept", "kept_fraction", "expected_fraction", "tokens_kept", "skipped", "strategy",
            "by_source", "histogram")
    return {k: stats[k] for k in keep if k in stats}


# -------------------------------------------------------------------------------------- CLI

@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config")
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Print the plan (stages, token budgets, steps) and exit.")
def study(config: str, overrides: tuple[str, ...], dry_run: bool) -> None:
    """Run a sampling-strategy study: sample, pre-train at equal token budgets, benchmark.

    CONFIG is a preset name (demo, small, base: configs/study/NAME.yaml) or a YAML path;
    OVERRIDES are dotted ``section.key=value`` pairs. Every stage is skipped when its output
    exists and matches the config, so re-running resumes.

    \b
    Examples:
      bench study demo                      # tiny model, a few thousand documents, ~5 min on 2 CPU cores
      bench study small                     # the published CPU study
      bench study base --dry-run            # BERTIN's setup on mC4-es: the plan only
      bench study demo benchmark.seeds=2 sampling.strategies=[random,gaussian]
    """
    try:
        cfg = load_study(config, overrides)
        runner = Study(cfg)
        if dry_run:
            click.echo("\n".join(runner.plan()))
            return
        report = runner.run()
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    results = cfg.results
    click.echo("")
    for name in ("leaderboard.md", "comparison/compare.md"):
        if (results / name).is_file():
            click.echo((results / name).read_text(encoding="utf-8"))
    click.echo(f"study {cfg.name} finished in {report['seconds'] / 60:.1f} min")
    click.echo(f"results: {results}")
    for name, path in report["figures"].items():
        click.echo(f"  figure ({name}): {path}")
