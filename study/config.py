"""The study's configuration: one typed section per stage, loaded from configs/study/*.yaml."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bertin_bench import config as typed_config

STUDY_DIR = Path(__file__).resolve().parent.parent / "configs" / "study"
CONTROL = "full"  # name of the unsampled-corpus control arm


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
