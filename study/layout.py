"""Every path a study reads or writes, named once.

``work`` holds the large artifacts (corpus split, scored shards, samples, tokenizer, checkpoints,
exported models): never committed. ``results`` holds what a study publishes (result JSONs,
leaderboard, comparison, figures, study.json). Stages ask the layout for a path; no stage spells
one out, so moving a folder is a one-line change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The marker a study stage leaves in its output directory (bertin_bench.markers). Its own name:
# a sample directory is also the sampling run's output, which keeps a marker of its own.
MARK = "study_stage.json"


@dataclass(frozen=True)
class Layout:
    work: Path
    results: Path

    # -- work: one directory per stage, and per arm below it -----------------------------------
    @property
    def corpus_dir(self) -> Path:  # the held-out split and what every arm samples from
        return self.work / "corpus"

    @property
    def heldout_file(self) -> Path:
        return self.corpus_dir / "heldout.jsonl.gz"

    @property
    def corpus_file(self) -> Path:
        return self.corpus_dir / "corpus.jsonl.gz"

    @property
    def scored_dir(self) -> Path:
        return self.work / "scored"

    @property
    def boundaries_dir(self) -> Path:
        return self.work / "boundaries"

    @property
    def boundaries_file(self) -> Path:
        return self.boundaries_dir / "boundaries.json"

    def sample_dir(self, arm: str) -> Path:
        return self.work / "samples" / arm

    def sample_data(self, arm: str) -> Path:  # the shards pre-training reads
        return self.sample_dir(arm) / "data"

    @property
    def tokenizer_dir(self) -> Path:
        return self.work / "tokenizer"

    def model_stage_dir(self, arm: str, seed: int) -> Path:  # the pre-training of one (arm, seed)
        return self.work / "models" / arm / f"s{seed}"

    def run_dir(self, arm: str, seed: int) -> Path:  # checkpoints, metrics.jsonl
        return self.model_stage_dir(arm, seed) / "run"

    def model_dir(self, arm: str, seed: int) -> Path:  # the Hugging Face export the benchmark fine-tunes
        return self.model_stage_dir(arm, seed) / "hf"

    @property
    def eval_docs_file(self) -> Path:  # the documents of the per-domain evaluation, in order
        return self.work / "eval" / "documents.jsonl.gz"

    def eval_dir(self, arm: str, seed: int) -> Path:  # per-document MLM statistics of one model
        return self.work / "eval" / arm / f"s{seed}"

    @property
    def jax_cache(self) -> Path:
        return self.work / "jax_cache"

    # -- results -------------------------------------------------------------------------------
    @property
    def leaderboard_md(self) -> Path:
        return self.results / "leaderboard.md"

    @property
    def comparison_dir(self) -> Path:
        return self.results / "comparison"

    @property
    def comparison_md(self) -> Path:
        return self.comparison_dir / "compare.md"

    @property
    def comparison_png(self) -> Path:
        return self.comparison_dir / "compare.png"

    @property
    def heldout_by_source_csv(self) -> Path:
        return self.results / "heldout_by_source.csv"

    @property
    def domains_csv(self) -> Path:  # Multi-Bootstrap deltas of the per-domain losses
        return self.results / "comparison" / "domains.csv"

    @property
    def evidence_md(self) -> Path:  # the study's findings: every test of the study, one Holm family
        return self.results / "evidence.md"

    def figure(self, name: str) -> Path:
        return self.results / "figures" / f"{name}.png"

    @property
    def study_json(self) -> Path:
        return self.results / "study.json"
