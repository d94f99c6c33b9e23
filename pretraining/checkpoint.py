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

An export (:func:`export_hf`, or :func:`export_untrained` for a never-trained floor) is a Hugging
Face directory: Flax weights, ``model.safetensors`` for PyTorch when torch is installed, the
tokenizer and ``bertin_pretraining.json``, the one file with dates and paths.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import flax.serialization
import numpy as np

from bertin_bench import markers
from bertin_bench.exports import EXPORT_INFO, read_export_info
from bertin_bench.io import atomic_dir, read_json, write_json_atomic, write_text_atomic
from bertin_bench.provenance import environment, hash_file
from pretraining.config import PretrainConfig
from pretraining.tokenizer import copy_tokenizer, tokenizer_files

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
        copy_tokenizer(tokenizer_dir, tmp / "tokenizer")  # its files only, not a model card or licence
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


def export_hf(checkpoint_dir: str | Path, out_dir: str | Path, *, pytorch: bool | None = None) -> Path:
    """A Hugging Face model directory (config.json, flax_model.msgpack, tokenizer files and
    ``bertin_pretraining.json``) from a checkpoint; ``FlaxAutoModelForMaskedLM`` and
    ``FlaxAutoModelForTokenClassification`` load it as it is. ``pytorch``: also write
    ``model.safetensors`` (None: when torch is installed; True: required). Re-exporting the same
    checkpoint into the same directory is a no-op; any other existing ``out_dir`` is an error."""
    from pretraining.config import load_config
    from pretraining.tokenizer import load_tokenizer

    ckpt = Path(checkpoint_dir)
    if _STEP_DIR.match(ckpt.name) is None and latest_checkpoint(ckpt) is not None:
        ckpt = latest_checkpoint(ckpt)  # a run directory: export its latest checkpoint
    meta = load_metadata(ckpt)
    out = Path(out_dir)
    key = export_key(meta)
    if _holds_export(out, key, f"an export of {ckpt}"):
        return out
    cfg = load_config(ckpt / "config.yaml")
    info = {
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
    }
    return _write_export(out, cfg, load_tokenizer(ckpt / "tokenizer"), load_params(ckpt), info, key, pytorch)


def export_untrained(cfg: PretrainConfig, out_dir: str | Path, *, pytorch: bool | None = None) -> Path:
    """The floor of a study: the model of ``cfg`` initialised with ``cfg.training.seed`` exactly as
    :func:`pretraining.train.train` initialises it, never trained, exported like :func:`export_hf`
    (same files; the export info says ``steps`` 0, ``tokens_seen`` 0, ``"untrained": true``).
    The tokenizer is ``cfg.tokenizer.path``. Re-exporting the same model, seed and tokenizer into
    the same directory is a no-op; any other existing ``out_dir`` is an error."""
    from bertin_bench import paths
    from pretraining.model import DTYPES, MaskedLM, init_params, roberta_config
    from pretraining.tokenizer import check_vocab, load_tokenizer

    if not cfg.tokenizer.path:
        raise ValueError("an untrained export needs a tokenizer directory: set tokenizer.path "
                         "(the tokenizer the trained models of the comparison use)")
    tok_dir = paths.resolve(cfg.tokenizer.path)
    tok = load_tokenizer(tok_dir)
    check_vocab(tok, cfg.model.vocab_size)
    identity = tokenizer_identity(tok_dir, cfg.tokenizer.path, len(tok))
    model = {k: v for k, v in cfg.to_dict()["model"].items() if k != "dtype"}  # dtype: compute only
    key = {"untrained": True, "model": model, "seed": cfg.training.seed, "tokenizer_hash": identity["hash"]}
    out = Path(out_dir)
    if _holds_export(out, key, f"the untrained model of seed {cfg.training.seed}"):
        return out
    module = MaskedLM(roberta_config(cfg.model, tok), dtype=DTYPES[cfg.model.dtype])
    params = to_host(init_params(module, cfg.training.seq_len, cfg.training.seed))
    info = {
        "steps": 0,
        "tokens_seen": 0,
        "untrained": True,
        "seq_len": cfg.training.seq_len,
        "config": cfg.to_dict(),
        "data": None,
        "tokenizer": identity,
        "checkpoint": None,
        "checkpoint_hash": None,
        "eval": None,
        "provenance": {"export": environment()},
    }
    return _write_export(out, cfg, tok, params, info, key, pytorch)


def _holds_export(out: Path, key: dict, what: str) -> bool:
    """True when ``out`` already holds the export of ``key``; an error when it holds anything else."""
    if not out.exists():
        return False
    if markers.matches(_export_info_or_none(out), key):
        log.info("%s already holds this export", out)
        return True
    raise FileExistsError(f"{out} exists and is not {what}: choose another output directory")


def _write_export(out: Path, cfg: PretrainConfig, tok, params, info: dict, key: dict, pytorch: bool | None) -> Path:
    """Write the export directory in one rename. Every file but the export info is a pure function
    of the parameters, the model config and the tokenizer, so two exports of the same model are
    byte-identical there (the benchmark identifies models by content); dates, paths and versions
    go into the export info only."""
    from transformers import FlaxRobertaForMaskedLM

    from bertin_bench.tokenization import ensure_special_tokens
    from pretraining.model import roberta_config

    if pytorch is None:
        pytorch = torch_available()
    elif pytorch and not torch_available():
        raise ValueError(_NO_TORCH)
    ensure_special_tokens(tok, "roberta")  # e.g. BERTIN's tokenizer: exported models encode <s> ... </s>
    config = roberta_config(cfg.model, tok)
    config.architectures = ["RobertaForMaskedLM"]
    with atomic_dir(out) as tmp:
        FlaxRobertaForMaskedLM(config, _do_init=False).save_pretrained(str(tmp), params=params)
        tok.save_pretrained(str(tmp))
        if pytorch:
            add_pytorch_weights(tmp)
        write_json_atomic(tmp / EXPORT_INFO, {**info, **markers.stamp(key)})
    return out


PYTORCH_WEIGHTS = "model.safetensors"
_NO_TORCH = ("PyTorch weights need torch: pip install 'bertin-bench[torch]' (or a CPU build of torch), "
             "then add them with `bench pretrain export --pytorch EXPORT_DIR`")


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def add_pytorch_weights(export_dir: str | Path) -> Path:
    """Write ``model.safetensors`` (PyTorch ``RobertaForMaskedLM``) next to an export's Flax weights.

    transformers' own ``from_pretrained(..., from_flax=True)`` returns parameters that are empty
    meta tensors (4.57 with torch 2.x), so the model is built for real first and the Flax weights
    are copied into it; the output embedding is then tied to the input one, as the Flax model
    computes it. The export's config.json is kept as it is (PyTorch reads it unchanged)."""
    export_dir = Path(export_dir)
    if not torch_available():
        raise ValueError(_NO_TORCH)
    flax_file = export_dir / "flax_model.msgpack"
    if not flax_file.is_file() or not (export_dir / "config.json").is_file():
        raise FileNotFoundError(f"{export_dir} is not an export (no flax_model.msgpack or config.json)")
    import torch
    import transformers
    from transformers import RobertaConfig, RobertaForMaskedLM
    from transformers.modeling_flax_pytorch_utils import load_flax_weights_in_pytorch_model

    config = RobertaConfig.from_pretrained(str(export_dir))
    torch.manual_seed(0)  # every weight is overwritten below; the seed only makes that certain
    model = RobertaForMaskedLM(config)
    # transformers reports the output matrix and bias as "newly initialized": they have no Flax
    # parameter of their own and become the tied embedding and lm_head.bias right after.
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # from_numpy of read-only arrays; load_state_dict copies
            model = load_flax_weights_in_pytorch_model(model, flax.serialization.msgpack_restore(flax_file.read_bytes()))
    finally:
        transformers.logging.set_verbosity(verbosity)
    model.tie_weights()
    with tempfile.TemporaryDirectory(prefix=".pt-", dir=export_dir.parent) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        os.replace(Path(tmp) / PYTORCH_WEIGHTS, export_dir / PYTORCH_WEIGHTS)
    return export_dir / PYTORCH_WEIGHTS


def export_key(meta: dict) -> dict:
    """What an export is made from: the checkpoint's exact state (its hash) at its step."""
    return {"checkpoint_hash": meta.get("state_hash"), "steps": meta["step"]}


def _export_info_or_none(out: Path) -> dict | None:
    try:
        return read_export_info(out)
    except ValueError:  # an unreadable info file: not a finished export of ours
        return None


def tokenizer_identity(tokenizer_dir: Path, source: str, vocab_size: int) -> dict:
    """Where the tokenizer came from and the hash of its tokenizer files (not of whatever else its
    folder holds): the hash equals ``hash_dir`` of a folder holding just those files."""
    h = hashlib.sha256()
    for f in sorted(tokenizer_files(tokenizer_dir), key=lambda f: f.name):
        h.update(f.name.encode())
        h.update(hash_file(f).encode())
    return {"source": source, "vocab_size": vocab_size, "hash": h.hexdigest()}
