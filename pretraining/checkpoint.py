"""Checkpoints: one directory per step, written atomically, and the Hugging Face export.

``RUN_DIR/checkpoints/step_00000100/`` holds

- ``state.msgpack``  params, optimizer state, step and RNG key (flax msgpack serialization),
- ``metadata.json``  step, tokens seen, data position, model/config identity, provenance,
- ``config.yaml``    the resolved config of the run,
- ``tokenizer/``     the tokenizer files, so a checkpoint directory is self-contained.

A checkpoint is written to a hidden temporary directory and renamed into place
(:func:`bertin_bench.io.atomic_dir`), so a kill never leaves a half-written one that ``--resume``
would trust; the oldest are deleted beyond ``keep_last``. Only ``step_*`` directories of this run's
``checkpoints/`` are ever replaced or deleted.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import flax.serialization
import numpy as np

from bertin_bench import markers
from bertin_bench.exports import EXPORT_INFO, read_export_info
from bertin_bench.io import atomic_dir, read_json, write_json_atomic, write_text_atomic
from bertin_bench.provenance import environment, hash_dir

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_dir(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives (or will)."""
    return checkpoints_dir(run_dir) / f"step_{step:08d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (with metadata.json) of a run, oldest first. Accepts the run directory
    or its ``checkpoints/`` folder."""
    run_dir = Path(run_dir)
    root = run_dir if run_dir.name == "checkpoints" else checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = _STEP_DIR.match(d.name)
        if m and d.is_dir() and (d / "metadata.json").exists() and (d / "state.msgpack").exists():
            found.append((int(m.group(1)), d))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def to_host(tree):
    """Numpy copies of (replicated) device arrays, also on multi-host where they are not fully
    addressable from one process."""
    import jax

    def get(x):
        if isinstance(x, jax.Array):
            return np.asarray(x.addressable_data(0))
        return x

    return jax.tree_util.tree_map(get, tree)


def save_checkpoint(run_dir: str | Path, step: int, state: Any, metadata: dict, config_yaml: str,
                    tokenizer_dir: Path, keep_last: int) -> Path:
    final = step_dir(run_dir, step)
    # replace=True: the same step written again (a re-run after a crash) is this run's own output.
    with atomic_dir(final, replace=True) as tmp:
        blob = flax.serialization.to_bytes(to_host(state))
        (tmp / "state.msgpack").write_bytes(blob)
        metadata = {**metadata, "state_hash": hashlib.sha256(blob).hexdigest()[:16]}
        write_text_atomic(tmp / "config.yaml", config_yaml)
        shutil.copytree(tokenizer_dir, tmp / "tokenizer")
        write_json_atomic(tmp / "metadata.json", {**metadata, "step": step, "provenance": environment()})
    for _, old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old)
    return final


def load_metadata(checkpoint_dir: str | Path) -> dict:
    path = Path(checkpoint_dir) / "metadata.json"
    if not path.exists():
        raise FileNotFoundError(f"{checkpoint_dir} is not a checkpoint directory (no metadata.json)")
    return read_json(path)


def restore_state(checkpoint_dir: str | Path, target: Any, *, model_hash: str) -> Any:
    """The saved state in the structure of ``target``; a checkpoint of another model is an error."""
    meta = load_metadata(checkpoint_dir)
    if meta.get("model_hash") != model_hash:
        raise ValueError(
            f"checkpoint {checkpoint_dir} is from another model config (model hash {meta.get('model_hash')} "
            f"!= {model_hash}): compare its config.yaml with this run's model section")
    raw = (Path(checkpoint_dir) / "state.msgpack").read_bytes()
    try:
        return flax.serialization.from_bytes(target, raw)
    except (ValueError, KeyError) as err:
        raise ValueError(f"{checkpoint_dir}/state.msgpack does not match this run's state: {err}") from None


def load_params(checkpoint_dir: str | Path) -> dict:
    raw = (Path(checkpoint_dir) / "state.msgpack").read_bytes()
    return flax.serialization.msgpack_restore(raw)["params"]


def export_hf(checkpoint_dir: str | Path, out_dir: str | Path) -> Path:
    """A Hugging Face model directory (config.json, flax_model.msgpack, tokenizer files and
    ``bertin_pretraining.json``) from a checkpoint; ``FlaxAutoModelForMaskedLM`` and
    ``FlaxAutoModelForTokenClassification`` load it as it is. Re-exporting the same checkpoint
    into the same directory is a no-op; any other existing ``out_dir`` is an error."""
    from transformers import FlaxRobertaForMaskedLM

    from bertin_bench.tokenization import ensure_special_tokens
    from pretraining.config import load_config
    from pretraining.model import roberta_config
    from pretraining.tokenizer import load_tokenizer

    ckpt = Path(checkpoint_dir)
    if _STEP_DIR.match(ckpt.name) is None and latest_checkpoint(ckpt) is not None:
        ckpt = latest_checkpoint(ckpt)  # a run directory: export its latest checkpoint
    meta = load_metadata(ckpt)
    out = Path(out_dir)
    key = export_key(meta)
    if out.exists():
        if markers.matches(_export_info_or_none(out), key):
            log.info("%s already holds this export", out)
            return out
        raise FileExistsError(f"{out} exists and is not an export of {ckpt}: choose another output directory")
    cfg = load_config(ckpt / "config.yaml")
    tok = load_tokenizer(ckpt / "tokenizer")
    ensure_special_tokens(tok, "roberta")  # e.g. BERTIN's tokenizer: exported models encode <s> ... </s>
    config = roberta_config(cfg.model, tok)
    config.architectures = ["RobertaForMaskedLM"]
    params = load_params(ckpt)
    with atomic_dir(out) as tmp:
        model = FlaxRobertaForMaskedLM(config, _do_init=False)
        model.save_pretrained(str(tmp), params=params)
        tok.save_pretrained(str(tmp))
        write_json_atomic(tmp / EXPORT_INFO, {
            "steps": meta["step"],
            "tokens_seen": meta["tokens_seen"],
            "seq_len": meta["seq_len"],
            "config": cfg.to_dict(),
            "data": meta["data"],
            "tokenizer": meta["tokenizer"],
            "checkpoint": str(ckpt.resolve()),
            "checkpoint_hash": meta.get("state_hash"),
            "eval": meta.get("eval"),
            "provenance": {"export": environment(), "training": meta.get("provenance")},
            **markers.stamp(key),
        })
    return out


def export_key(meta: dict) -> dict:
    """What an export is made from: the checkpoint's exact state (its hash) at its step."""
    return {"checkpoint_hash": meta.get("state_hash"), "steps": meta["step"]}


def _export_info_or_none(out: Path) -> dict | None:
    try:
        return read_export_info(out)
    except ValueError:  # an unreadable info file: not a finished export of ours
        return None


def tokenizer_identity(tokenizer_dir: Path, source: str, vocab_size: int) -> dict:
    return {"source": source, "vocab_size": vocab_size, "hash": hash_dir(tokenizer_dir)}
