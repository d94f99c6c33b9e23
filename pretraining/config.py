"""Pre-training configuration: nested typed dataclasses, YAML presets and dotted overrides.

A run is fully described by one :class:`PretrainConfig`. Presets live in ``configs/pretrain/*.yaml``
(``tiny``, ``small``, ``base``); ``load_config("tiny", ["training.max_steps=50"])`` loads a preset by
name (or a YAML path) and applies ``section.key=value`` overrides, whose values are parsed as YAML
(``true``, ``1e-4``, ``[a, b]``). Unknown keys, in a file or an override, are errors that name the
dotted path, so a typo never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from bertin_bench import config as typed_config
from bertin_bench.provenance import hash_jsonable

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs" / "pretrain"


@dataclass
class DataConfig:
    # A directory (its *.jsonl.gz / *.jsonl / *.parquet files, sorted by name), a glob, a file, or
    # a list of those: exactly what the sampling stage writes to OUT/data/.
    train_files: list[str] = field(default_factory=list)
    text_field: str = "text"
    # The first N documents of the corpus (in file order) are held out for evaluation and never
    # trained on; a fixed, small slice keeps eval cheap and comparable across runs and epochs.
    eval_docs: int = 200
    # Evaluate on the first ``eval_docs`` documents of these files instead (then nothing is held
    # out of train_files): runs trained on different samples are compared on the SAME text.
    eval_files: list[str] = field(default_factory=list)
    # Up to this many held-out blocks are evaluated (fixed masks, so the curve is not noisy).
    eval_blocks: int = 64
    # Blocks are shuffled inside windows of this many blocks: large enough to mix documents and
    # shards, small enough to stay in memory (never the whole corpus).
    shuffle_buffer_blocks: int = 2048
    # Documents tokenized per call to the Rust tokenizer (batched tokenization is ~10x faster).
    tokenize_batch_docs: int = 256
    # Batches prepared ahead in a background thread so tokenization/masking overlaps compute.
    prefetch_batches: int = 4
    seed: int = 0


@dataclass
class TokenizerConfig:
    # An existing tokenizer directory (e.g. BERTIN's); when null a byte-level BPE is trained on
    # the training shards into RUN_DIR/tokenizer with ``vocab_size`` (RoBERTa special tokens).
    path: str | None = None
    vocab_size: int = 50265
    min_frequency: int = 2
    # Documents read to train a new BPE (a sample is enough for the merges to converge).
    train_docs: int = 100_000


@dataclass
class ModelConfig:
    num_hidden_layers: int = 12
    hidden_size: int = 768
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    # Must equal the tokenizer's vocabulary size (checked at start-up).
    vocab_size: int = 50265
    # 512 tokens + RoBERTa's padding offset of 2: set from the start so that a 128-token phase can
    # be continued at 512 tokens without resizing the position table (BERTIN's two phases).
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    # Compute dtype: "bfloat16" on accelerators (params and optimizer state stay float32).
    dtype: str = "float32"


@dataclass
class OptimizerConfig:
    learning_rate: float = 6e-4
    b1: float = 0.9
    # 0.98 (not 0.999) as in RoBERTa: more stable with large batches.
    b2: float = 0.98
    eps: float = 1e-6
    # Applied to weight matrices and embeddings only: never to biases or LayerNorm scales.
    weight_decay: float = 0.01
    # Global-norm gradient clipping; null disables it (BERTIN/run_mlm_flax do not clip).
    max_grad_norm: float | None = None


@dataclass
class ScheduleConfig:
    warmup_steps: int = 24_000
    # Linear decay to ``end_learning_rate`` at ``training.max_steps`` (BERTIN: to 0).
    end_learning_rate: float = 0.0


@dataclass
class TrainingConfig:
    seq_len: int = 128
    # Global batch in sequences, independent of the number of devices (it is split over them).
    batch_size: int = 2048
    # Micro-batches per step: the same global batch in ``grad_accum`` slices (less memory).
    grad_accum: int = 1
    max_steps: int = 250_000
    # When set, overrides max_steps: ceil(max_tokens / (batch_size * seq_len)) steps, so that runs
    # with different sampling strategies can be compared at an equal token budget.
    max_tokens: int | None = None
    mlm_probability: float = 0.15
    # Compute the 50k-vocabulary output layer only at the masked positions (same loss, much faster).
    masked_only_logits: bool = True
    seed: int = 0
    # Phase 2: start from this checkpoint directory (e.g. a 128-token run continued at 512).
    init_from: str | None = None
    # With init_from: false keeps Adam moments and the step count of the schedule (what BERTIN's
    # random-512 run did, and it degraded); true starts a fresh optimizer with this run's schedule.
    reset_optimizer: bool = True


@dataclass
class CheckpointConfig:
    every_steps: int = 10_000
    keep_last: int = 3


@dataclass
class LoggingConfig:
    log_every: int = 100
    eval_every: int = 1_000
    # Peak device FLOP/s for the MFU estimate; null = look the device kind up (GPUs/TPUs), else
    # MFU is not shown (CPUs have no meaningful single peak).
    peak_tflops: float | None = None
    progress: bool = True


@dataclass
class PretrainConfig:
    name: str = "custom"
    # Run directory: checkpoints/, metrics.jsonl, loss_curve.png, config.yaml, tokenizer/.
    out_dir: str = "runs/custom"
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    checkpointing: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def total_steps(self) -> int:
        t = self.training
        if t.max_tokens is not None:
            return max(1, math.ceil(t.max_tokens / (t.batch_size * t.seq_len)))
        return t.max_steps

    def model_hash(self) -> str:
        """Identity of the parameter shapes: checkpoints are only loadable into the same model."""
        m = self.to_dict()["model"]
        return hash_jsonable({k: m[k] for k in (
            "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings", "type_vocab_size")})

    def validate(self) -> None:
        m, t = self.model, self.training
        errors = []
        if m.hidden_size % m.num_attention_heads:
            errors.append(f"model.hidden_size={m.hidden_size} is not divisible by model.num_attention_heads={m.num_attention_heads}")
        if t.seq_len + 2 > m.max_position_embeddings:
            errors.append(f"training.seq_len={t.seq_len} needs model.max_position_embeddings >= {t.seq_len + 2} (RoBERTa offsets positions by 2), got {m.max_position_embeddings}")
        if t.batch_size % t.grad_accum:
            errors.append(f"training.batch_size={t.batch_size} is not divisible by training.grad_accum={t.grad_accum}")
        if not 0 < t.mlm_probability < 1:
            errors.append(f"training.mlm_probability must be in (0, 1), got {t.mlm_probability}")
        if m.dtype not in ("float32", "bfloat16", "float16"):
            errors.append(f"model.dtype must be float32, bfloat16 or float16, got {m.dtype!r}")
        if self.total_steps < 1:
            errors.append("training.max_steps must be >= 1")
        if self.schedule.warmup_steps > self.total_steps:
            errors.append(f"schedule.warmup_steps={self.schedule.warmup_steps} exceeds the {self.total_steps} training steps")
        if not self.data.train_files:
            errors.append("data.train_files is empty: pass a shard directory, e.g. data.train_files=[out/gaussian/data]")
        if errors:
            raise ValueError("invalid pre-training config:\n  " + "\n  ".join(errors))


# ----------------------------------------------------------------------------- loading

def from_dict(data: dict) -> PretrainConfig:
    return typed_config.build(PretrainConfig, data)


def load_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> PretrainConfig:
    """A preset name (``tiny``/``small``/``base``) or a YAML path, plus ``a.b=value`` overrides."""
    path = typed_config.resolve_preset(name_or_path, PRESET_DIR)
    return typed_config.load(PretrainConfig, path, overrides, defaults={"name": path.stem})
