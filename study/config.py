"""The study's configuration: one typed section per stage, loaded from configs/study/*.yaml."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bertin_bench import config as typed_config
from bertin_bench.executor import ExecutorOptions

STUDY_DIR = Path(__file__).resolve().parent.parent / "configs" / "study"
CONTROL = "full"  # name of the unsampled-corpus control arm
FLOOR = "none"  # the never-pre-trained floor: same architecture, tokenizer and seeds, no training


@dataclass
class CorpusConfig:
    # A file, directory, glob, or hf://DATASET[:CONFIG][@SPLIT]; data:... is in the data directory.
    input: str = "data:web_es/web_es_mix.jsonl.gz"
    text_key: str = "text"
    # The first N documents are held out of every sample and are the common evaluation text of
    # every arm's pre-training, so held-out losses compare across strategies (0: each arm holds
    # out the start of its own sample, which is NOT comparable: a stepwise sample is easier text).
    heldout_docs: int = 500
    # Instead: the first N documents OF EACH SOURCE (the `source_key` field) are held out, so every
    # domain has enough held-out text to measure where a strategy acts (a plain head of the web
    # sample is 62% UN news and 33% tweets, ~10 documents of each other source). 0: use heldout_docs.
    heldout_per_source: int = 0
    source_key: str = "source"
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
    # Pre-training seeds per arm: a count (seeds 0..N-1) or a list of seed ids. A seed changes the
    # initialisation, the masking and the data order; the sample and the budget stay the same.
    # The pre-trained model is what a strategy changes, so it is the unit of replication: with
    # one seed per arm no difference between strategies can be called significant.
    seeds: Any = 1
    # Also the never-pre-trained floor ("none"): every task is read against it.
    floor: bool = True

    @property
    def seed_list(self) -> list[int]:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, (int, list)):
            raise ValueError(f"pretraining.seeds must be a count or a list of integers, got {self.seeds!r}")
        if isinstance(self.seeds, int):
            if self.seeds < 1:
                raise ValueError(f"pretraining.seeds must be >= 1, got {self.seeds}")
            return list(range(self.seeds))
        if not self.seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in self.seeds):
            raise ValueError(f"pretraining.seeds: a non-empty list of integers, got {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"pretraining.seeds has duplicates: {self.seeds}")
        return list(self.seeds)


@dataclass
class EvaluationConfig:
    # Intrinsic evaluation of every pre-trained model, per domain: MLM loss and accuracy on the
    # held-out documents of each source, and on Wikipedia text, which no arm trains on. The masks
    # are fixed by mask_seed, so every model predicts exactly the same tokens.
    by_source: bool = True
    # A text file, one paragraph per line (null: no Wikipedia domain), and how many lines.
    wiki: str | None = "data:wiki_es/wiki_es.txt"
    wiki_docs: int = 300
    seq_len: int = 128
    # Blocks of seq_len tokens scored per document (long news articles would dominate otherwise).
    max_blocks_per_doc: int = 2
    mask_seed: int = 0
    batch_size: int = 32


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
    # Small artifacts of this run (result JSONs, leaderboard, comparison, figures): in the work
    # dir, so running a study never rewrites the published, committed ones ...
    results_dir: str = "runs/study-{name}/results"
    # ... which `bench study NAME --publish` writes instead, and a plain run is compared with.
    publish_dir: str = "results/studies/{name}"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    tokenizer: TokenizerStudyConfig = field(default_factory=TokenizerStudyConfig)
    pretraining: PretrainStudyConfig = field(default_factory=PretrainStudyConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    benchmark: BenchmarkStudyConfig = field(default_factory=BenchmarkStudyConfig)
    # Where the pre-training (arm x seed) and fine-tuning (model x task x seed) units run, as for
    # `bench sample` and `bench run` (kind local|slurm|ray, workers, gpus_per_task, slurm_*, ...;
    # `tasks` is unused: the study makes one task per unit). Local with 1 worker, the default, runs
    # them one after another in this process (sharing its compiled programs); anything else
    # dispatches each unit as its own process or job (study/dispatch.py). It changes where the
    # work runs, not what it computes, so it is part of no stage's key.
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    # Significance level of the study's tests (Holm-adjusted over all its comparisons).
    alpha: float = 0.05
    # Multi-Bootstrap draws.
    nboot: int = 1000

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def work(self) -> Path:
        return Path(self.work_dir.format(name=self.name))

    @property
    def results(self) -> Path:
        return Path(self.results_dir.format(name=self.name))

    @property
    def published(self) -> Path:
        return Path(self.publish_dir.format(name=self.name))

    @property
    def sampled_arms(self) -> list[str]:
        """The arms trained on a sample of the corpus (the strategies, and the full control)."""
        return list(self.sampling.strategies) + ([CONTROL] if self.sampling.control else [])

    @property
    def arms(self) -> list[str]:
        return self.sampled_arms + ([FLOOR] if self.pretraining.floor else [])

    @property
    def controls(self) -> list[str]:
        return [a for a in (CONTROL, FLOOR) if a in self.arms]

    @property
    def units(self) -> list[tuple[str, int]]:
        """Every pre-trained model of the study: (arm, pre-training seed)."""
        return [(arm, seed) for arm in self.arms for seed in self.pretraining.seed_list]

    def model_name(self, arm: str, seed: int) -> str:
        return f"{self.name}-{arm}-s{seed}"

    def validate(self, check_inputs: bool = True) -> None:
        """Every setting, checked before anything runs; a real run and ``--dry-run`` run the same
        checks, so a plan is never printed for a study that would fail later. ``check_inputs``:
        also check that the corpus, the LM, the tokenizer and the Wikipedia file exist."""
        from benchmark.tasks import task_names
        from sampling.strategies import STRATEGIES

        errors = []
        if not self.sampling.strategies:
            errors.append("sampling.strategies is empty: name at least one of " + ", ".join(sorted(STRATEGIES)))
        for key in ("tasks", "workers", "boundary_docs"):
            if getattr(self.sampling, key) < 1:
                errors.append(f"sampling.{key} must be >= 1, got {getattr(self.sampling, key)}")
        if not self.benchmark.tasks:
            errors.append("benchmark.tasks is empty")
        if self.executor.logging_dir:  # each stage's pass has its own, under the work and results dirs
            errors.append("executor.logging_dir is set by the study (WORK/.executor, RESULTS/.executor): leave it out")
        try:
            task_names(self.benchmark.tasks)
        except KeyError as err:
            errors.append(f"benchmark.tasks: {err.args[0]}")
        from benchmark.tasks import check_hyperparameters, split_overrides
        from pretraining.config import load_config

        try:  # the fine-tuning overrides, with the key named (not after sampling and pre-training)
            check_hyperparameters(split_overrides(self.benchmark.overrides)[0])
        except (KeyError, ValueError) as err:
            errors.append(f"benchmark.overrides: {err.args[0] if err.args else err}")
        try:  # the preset and its overrides, checked before the first stage
            load_config(self.pretraining.preset, self.pretraining.overrides)
        except (FileNotFoundError, ValueError) as err:
            errors.append(f"pretraining: {err}")
        for key in ("limit_train", "limit_eval"):
            value = getattr(self.benchmark, key)
            if value is not None and value < 1:
                errors.append(f"benchmark.{key} must be >= 1 or null, got {value}")
        if check_inputs:
            errors += self._missing_inputs()
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
        try:
            self.pretraining.seed_list
        except ValueError as err:
            errors.append(str(err))
        if FLOOR in self.sampling.strategies or CONTROL in self.sampling.strategies:
            errors.append(f"sampling.strategies: {FLOOR!r} and {CONTROL!r} are controls (pretraining.floor, "
                          "sampling.control), not strategies")
        if self.corpus.heldout_per_source < 0 or self.corpus.heldout_docs < 0:
            errors.append("corpus.heldout_docs / corpus.heldout_per_source must be >= 0")
        if self.evaluation.by_source and not (self.corpus.heldout_per_source or self.corpus.heldout_docs):
            errors.append("evaluation.by_source needs held-out documents (corpus.heldout_per_source or heldout_docs)")
        if not 0 < self.alpha < 1:
            errors.append(f"alpha must be in (0, 1), got {self.alpha}")
        if self.nboot < 100:
            errors.append(f"nboot must be >= 100, got {self.nboot}")
        if errors:
            raise ValueError("invalid study config:\n  " + "\n  ".join(errors))

    def _missing_inputs(self) -> list[str]:
        from bertin_bench import paths

        wanted = [("corpus.input", self.corpus.input), ("lm.model_dir", self.lm.model_dir)]
        if self.tokenizer.path:
            wanted.append(("tokenizer.path", self.tokenizer.path))
        if self.evaluation.by_source and self.evaluation.wiki:
            wanted.append(("evaluation.wiki", self.evaluation.wiki))
        errors = []
        for key, spec in wanted:
            if "://" in spec or any(ch in spec for ch in "*?["):
                continue  # a Hub dataset or a glob: checked when it is read
            try:
                path = paths.resolve(spec)
            except FileNotFoundError as err:
                errors.append(f"{key}: {err}")
                continue
            if not path.exists():
                errors.append(f"{key}: {path} does not exist")
        return errors


def load_study(name_or_path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """A study preset name (``demo``/``small``/``base``: configs/study/NAME.yaml) or a YAML path."""
    path = typed_config.resolve_preset(name_or_path, STUDY_DIR, kind="study")
    cfg = typed_config.load(StudyConfig, path, overrides, defaults={"name": path.stem})
    cfg.validate()
    return cfg
