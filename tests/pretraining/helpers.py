"""Shared by the pre-training tests: real shards cut from the web sample, small configs."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

from pretraining.config import load_config


def make_shards(web_sample: Path, out: Path, n_docs: int = 3000, n_shards: int = 3, skip: int = 0) -> Path:
    """Split documents ``skip .. skip+n_docs`` of the web sample into gzip JSONL shards named like
    the sampling stage's output (00000.jsonl.gz, ...)."""
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(web_sample, "rt", encoding="utf-8") as f:
        lines = list(itertools.islice(f, skip, skip + n_docs))
    per = -(-len(lines) // n_shards)
    for i in range(n_shards):
        with gzip.open(out / f"{i:05d}.jsonl.gz", "wt", encoding="utf-8") as g:
            g.writelines(lines[i * per:(i + 1) * per])
    return out


def tiny_config(shards: Path, run_dir: Path, tokenizer: str | None, *extra: str):
    """The ``tiny`` preset made smaller still (hidden 32, seq 64) so a step takes milliseconds."""
    return load_config("tiny", tiny_overrides(shards, run_dir, tokenizer, *extra))


def tiny_overrides(shards: Path, run_dir: Path, tokenizer: str | None, *extra: str) -> list[str]:
    overrides = [
        f"data.train_files=[{shards}]", f"out_dir={run_dir}",
        "model.hidden_size=32", "model.intermediate_size=64", "model.num_attention_heads=2",
        "training.seq_len=64", "training.batch_size=8", "training.max_steps=12",
        "schedule.warmup_steps=2", "optimizer.learning_rate=5e-3", "data.eval_docs=40", "data.eval_blocks=16", "data.shuffle_buffer_blocks=64",
        "checkpointing.every_steps=4", "checkpointing.keep_last=2", "logging.log_every=1", "logging.eval_every=4",
        "logging.progress=false",
    ]
    if tokenizer is None:
        # Train a byte-level BPE into the run directory (the tokenizer.path=null path).
        overrides += ["tokenizer.path=null", "tokenizer.vocab_size=1000", "model.vocab_size=1000",
                      "tokenizer.train_docs=1500"]
    else:
        overrides += [f"tokenizer.path={tokenizer}"]
    return overrides + list(extra)
