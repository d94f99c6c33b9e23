"""The training loop: one jitted, data-parallel step; evaluation, logging, checkpoints, resume.

Data parallelism uses a 1-D ``jax.sharding.Mesh`` over all devices
(:class:`bertin_bench.jaxtools.DataParallel`): parameters and optimizer state are replicated, the
global batch (``training.batch_size``, whatever the device count) is sharded along its first axis,
and XLA inserts the gradient all-reduce. Several processes (hosts) join through
:mod:`pretraining.distributed`; each walks the same deterministic block stream but masks and feeds
only its own rows of the global batch, so the numbers do not depend on the process count. Process
0 alone writes (tokenizer, config, metrics, checkpoints, summary); the others wait for it at
barriers (:func:`bertin_bench.jaxtools.sync`).

:func:`train` reads top to bottom like nanoGPT's ``train.py``: set-up (run directory, data,
tokenizer, model, state), then one loop whose phases are step / log / evaluate / checkpoint / stop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import yaml
from tqdm.auto import tqdm

from bertin_bench import jaxtools, paths
from bertin_bench.io import read_json, write_text_atomic
from bertin_bench.jaxtools import decay_mask
from bertin_bench.provenance import hash_file
from pretraining import checkpoint, distributed
from pretraining.config import PretrainConfig, from_dict
from pretraining.data import BlockStream, MaskSpec, Position, Prefetcher, eval_batches, process_batches, resolve_files
from pretraining.model import DTYPES, MaskedLM, batch_loss_sums, init_params, roberta_config
from pretraining.plots import METRICS_FILE, plot_loss_curve, read_metrics
from pretraining.tokenizer import TRAINED_INFO, check_vocab, load_tokenizer, train_bpe

log = logging.getLogger(__name__)
# The ids of the blocks each process trains on, one debug line per step (``bench -vv``): the
# multi-host tests check with it that every block of an epoch is used once across processes.
block_log = logging.getLogger(__name__ + ".blocks")

# Peak dense bf16 FLOP/s per device for the MFU estimate (vendor datasheets, no sparsity).
PEAK_FLOPS = {"h100": 989e12, "h200": 989e12, "a100": 312e12, "l4": 121e12, "a10": 125e12,
              "v100": 125e12, "tpu v4": 275e12, "tpu v5 lite": 197e12, "tpu v5e": 197e12, "tpu v5p": 459e12}

class NonFiniteLossError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- set-up helpers

def learning_rate_schedule(cfg: PretrainConfig) -> optax.Schedule:
    """Linear warm-up to the peak, then linear decay to ``end_learning_rate`` at the last step."""
    return jaxtools.warmup_linear_schedule(cfg.optimizer.learning_rate, cfg.total_steps,
                                           cfg.schedule.warmup_steps, cfg.schedule.end_learning_rate)


def make_optimizer(cfg: PretrainConfig) -> optax.GradientTransformation:
    o = cfg.optimizer
    tx = optax.adamw(learning_rate_schedule(cfg), b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
                     mask=decay_mask)
    if o.max_grad_norm:
        tx = optax.chain(optax.clip_by_global_norm(o.max_grad_norm), tx)
    return tx


def train_flops_per_token(cfg: PretrainConfig) -> float:
    """Matmul FLOPs per trained token (forward + backward = 3x forward), counting the output layer
    only where it is computed (the masked positions, or every position)."""
    m, seq = cfg.model, cfg.training.seq_len
    per_layer = 2 * (4 * m.hidden_size**2 + 2 * m.hidden_size * m.intermediate_size) + 2 * 2 * seq * m.hidden_size
    head = 2 * m.hidden_size**2 + 2 * m.hidden_size * m.vocab_size
    head_fraction = cfg.training.mlm_probability if cfg.training.masked_only_logits else 1.0
    return 3 * (m.num_hidden_layers * per_layer + head_fraction * head)


def peak_flops(cfg: PretrainConfig) -> float | None:
    if cfg.logging.peak_tflops:
        return cfg.logging.peak_tflops * 1e12 * jax.device_count()
    kind = jax.devices()[0].device_kind.lower()
    for name, flops in PEAK_FLOPS.items():
        if name in kind:
            return flops * jax.device_count()
    return None


# ----------------------------------------------------------------------------- the step

def make_train_step(module: MaskedLM, tx: optax.GradientTransformation, *, masked_only: bool, grad_accum: int) -> Callable:
    """``step(state, batch) -> (state, metrics)``; gradients of the global-mean loss (sum of the
    masked-token losses / number of masked tokens in the whole batch), accumulated over
    ``grad_accum`` micro-batches with ``lax.scan`` so the update equals the one-shot update."""

    def sums(params, batch, key):
        return batch_loss_sums(module, params, batch, masked_only=masked_only, deterministic=False, dropout_rng=key)

    def step(state, batch):
        params = state["params"]
        key = jax.random.fold_in(state["rng"], state["step"])
        n = jnp.maximum(batch["mlm_weights"].sum(), 1.0)

        def loss_fn(p, mb, k):
            s, w, c = sums(p, mb, k)
            return s / n, (s, w, c)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        if grad_accum == 1:
            (_, (s, w, c)), grads = grad_fn(params, batch, key)
        else:
            # Micro-batch a = rows a, a+A, a+2A, ...: each micro-batch stays spread over all devices.
            micro = jax.tree_util.tree_map(
                lambda x: jnp.swapaxes(x.reshape((x.shape[0] // grad_accum, grad_accum) + x.shape[1:]), 0, 1), batch)

            def body(carry, inputs):
                g_acc, s_acc, w_acc, c_acc = carry
                mb, k = inputs
                (_, (s, w, c)), g = grad_fn(params, mb, k)
                return (jax.tree_util.tree_map(jnp.add, g_acc, g), s_acc + s, w_acc + w, c_acc + c), None

            zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
            keys = jax.random.split(key, grad_accum)
            (grads, s, w, c), _ = jax.lax.scan(body, (zeros, 0.0, 0.0, 0.0), (micro, keys))
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_state = {"step": state["step"] + 1, "params": optax.apply_updates(params, updates),
                     "opt_state": opt_state, "rng": state["rng"]}
        metrics = {"loss": s / jnp.maximum(w, 1.0), "accuracy": c / jnp.maximum(w, 1.0),
                   "grad_norm": optax.global_norm(grads)}
        return new_state, metrics

    return step


def make_eval_step(module: MaskedLM, *, masked_only: bool) -> Callable:
    def step(params, batch):
        return batch_loss_sums(module, params, batch, masked_only=masked_only, deterministic=True)

    return step


class DataParallel(jaxtools.DataParallel):
    """The shared device mesh, refusing a batch or micro-batch the devices cannot split evenly."""

    def __init__(self, batch_size: int, grad_accum: int = 1, devices: list | None = None):
        super().__init__(devices)
        self.check_divisible(batch_size, "training.batch_size")
        self.check_divisible(batch_size // grad_accum, "the micro-batch (training.batch_size / training.grad_accum)")


def evaluate(eval_fn, params, batches: list[dict], dp: DataParallel) -> dict:
    s = w = c = 0.0
    for b in batches:
        bs, bw, bc = jax.device_get(eval_fn(params, dp.put_batch(b)))
        s, w, c = s + float(bs), w + float(bw), c + float(bc)
    loss = s / max(w, 1.0)
    return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50.0)), "eval_accuracy": c / max(w, 1.0),
            "eval_tokens": int(sum(int(b["attention_mask"].sum()) for b in batches)), "eval_predictions": int(w)}


# ----------------------------------------------------------------------------- the log

class MetricsLog:
    """``metrics.jsonl`` (one JSON line per training window or evaluation) and the window behind it.

    Step metrics stay on the device until a line is due and are then fetched together, so the host
    never waits for the device between log lines; a line averages its window's steps. Only the
    main process writes."""

    def __init__(self, path: Path, *, write: bool, lr_schedule: optax.Schedule, flops_per_token: float,
                 peak: float | None):
        self.path, self.enabled = path, write
        self.lr_schedule, self.flops_per_token, self.peak = lr_schedule, flops_per_token, peak
        self.pending: list[tuple[int, Any]] = []  # (step, device metrics) not yet checked or logged
        self.start_window()

    def keep_upto(self, step: int | None) -> None:
        """Drop the lines after ``step``, the checkpoint a run resumes from (they will be produced
        again); ``None`` drops them all (a fresh run: the stale log of a crashed attempt)."""
        if not self.enabled or not self.path.exists():
            return
        if step is None:
            self.path.unlink()
            return
        keep = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        write_text_atomic(self.path, "".join(line + "\n" for line in keep))

    def start_window(self) -> None:
        self.window_tokens, self.window_t0 = 0, time.time()

    def add(self, step: int, device_metrics: dict, n_tokens: int) -> None:
        self.pending.append((step, device_metrics))
        self.window_tokens += n_tokens

    def flush(self, step: int, tokens_seen: int, last_checkpoint: Path | None) -> dict | None:
        """Fetch the window's metrics, stop on a non-finite loss (naming the step and the last good
        checkpoint), write and return the window's line."""
        if not self.pending:
            return None
        fetched = jax.device_get([m for _, m in self.pending])
        for (s, _), m in zip(self.pending, fetched):
            if not math.isfinite(float(m["loss"])):
                where = (f"the last good checkpoint is {last_checkpoint}" if last_checkpoint
                         else "no checkpoint was written")
                raise NonFiniteLossError(f"training loss is {float(m['loss'])} at step {s}: stopped; {where} "
                                         "(nothing after it was saved; lower optimizer.learning_rate or set "
                                         "optimizer.max_grad_norm)")
        elapsed = max(time.time() - self.window_t0, 1e-9)
        record = {"step": step, "loss": float(np.mean([float(m["loss"]) for m in fetched])),
                  "accuracy": float(np.mean([float(m["accuracy"]) for m in fetched])),
                  "grad_norm": float(fetched[-1]["grad_norm"]), "learning_rate": float(self.lr_schedule(step - 1)),
                  "tokens_seen": tokens_seen, "tokens_per_s": self.window_tokens / elapsed}
        if self.peak:
            record["mfu"] = self.window_tokens / elapsed * self.flops_per_token / self.peak
        self.pending.clear()
        self.start_window()
        self.write(record)
        return record

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def _postfix(record: dict) -> dict:
    post = {"loss": f"{record['loss']:.3f}", "tok/s": f"{record['tokens_per_s']:.0f}"}
    if "mfu" in record:
        post["mfu"] = f"{record['mfu']:.1%}"
    return post


# ----------------------------------------------------------------------------- resume and the run directory

# Sections that must not change when a run is resumed (they change the state or the data order).
_RESUME_FIXED = ("model", "data", "tokenizer", "optimizer", "schedule")
_RESUME_FIXED_TRAINING = ("seq_len", "batch_size", "grad_accum", "mlm_probability", "seed", "init_from")


def _check_resume_config(cfg: PretrainConfig, saved: PretrainConfig, where: Path) -> None:
    a, b = cfg.to_dict(), saved.to_dict()
    diffs = [f"{s}: {b[s]} -> {a[s]}" for s in _RESUME_FIXED if a[s] != b[s] and s not in ("data",)]
    diffs += [f"training.{k}: {b['training'][k]} -> {a['training'][k]}" for k in _RESUME_FIXED_TRAINING
              if a["training"][k] != b["training"][k]]
    da, db = dict(a["data"]), dict(b["data"])
    for k in ("prefetch_batches", "tokenize_batch_docs"):  # speed knobs: free to change
        da.pop(k), db.pop(k)
    if da != db:
        diffs.append(f"data: {db} -> {da}")
    if diffs:
        raise ValueError(f"cannot resume from {where}: it was trained with another config:\n  " + "\n  ".join(diffs)
                         + "\n(start a new run with --out DIR, or use training.init_from for a new phase)")


def _check_run_dir(run_dir: Path, latest: Path | None, resume: bool) -> None:
    """Write only into a new or empty directory, or a run of ours: a run with checkpoints needs
    --resume, and a directory holding anything else (data, another tool's output) is refused, since
    a run writes config.yaml and replaces metrics.jsonl there."""
    if latest is not None and not resume:
        raise FileExistsError(f"{run_dir} already has checkpoints (latest {latest.name}): pass --resume to "
                              "continue it, or --out DIR for a new run (nothing was overwritten)")
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run directory {run_dir} is a file: choose another --out DIR")
    if latest is None and run_dir.is_dir() and any(run_dir.iterdir()) and not _holds_a_run(run_dir):
        raise FileExistsError(f"{run_dir} is not empty and holds no pre-training run: choose a new or empty "
                              "--out DIR (nothing was written)")


def _holds_a_run(run_dir: Path) -> bool:
    """A run that stopped before its first checkpoint: its config.yaml is a pre-training config,
    or (stopped earlier still) it holds only the tokenizer it trained."""
    if (run_dir / "tokenizer" / TRAINED_INFO).is_file():
        return True
    try:
        from_dict(yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError):
        return False
    return True


def _data_identity(files: list[Path]) -> dict:
    return {"files": [str(f.resolve()) for f in files], "sha256": [hash_file(f) for f in files]}


def _prepare_tokenizer(cfg: PretrainConfig, run_dir: Path, files: list[Path], is_main: bool) -> tuple[Any, Path, str]:
    if cfg.tokenizer.path:
        tok_dir = paths.resolve(cfg.tokenizer.path)
        source = cfg.tokenizer.path
    else:
        tok_dir = run_dir / "tokenizer"
        source = "trained byte-level BPE"
        if is_main and not (tok_dir / "tokenizer.json").exists():
            log.info("training a %d-token byte-level BPE on %d shard(s)", cfg.tokenizer.vocab_size, len(files))
            train_bpe(files, tok_dir, cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency,
                      max_docs=cfg.tokenizer.train_docs, text_field=cfg.data.text_field)
        jaxtools.sync("tokenizer trained")  # the other processes load what process 0 wrote
    tok = load_tokenizer(tok_dir)
    check_vocab(tok, cfg.model.vocab_size)
    return tok, tok_dir, source


def _phase_start(state: dict, cfg: PretrainConfig, model_hash: str) -> dict:
    """A new phase from ``training.init_from`` (a checkpoint or a run's latest): its parameters,
    and its optimizer state unless ``training.reset_optimizer``."""
    init_dir = Path(cfg.training.init_from)
    if checkpoint.latest_checkpoint(init_dir) is not None and not (init_dir / "metadata.json").exists():
        init_dir = checkpoint.latest_checkpoint(init_dir)
    prev = checkpoint.restore_state(init_dir, state, model_hash=model_hash)
    state = {**state, "params": prev["params"]}
    if not cfg.training.reset_optimizer:
        state["opt_state"] = prev["opt_state"]
    log.info("phase start from %s (%s optimizer state)", init_dir,
             "fresh" if cfg.training.reset_optimizer else "kept")
    return state


def _plot(run_dir: Path) -> None:
    try:
        plot_loss_curve(run_dir / METRICS_FILE, run_dir / "loss_curve.png")
    except Exception as err:  # noqa: BLE001 - a plot never stops training
        log.warning("could not draw the loss curve: %s", err)


# ----------------------------------------------------------------------------- the loop

def train(cfg: PretrainConfig, *, resume: bool = False, interrupt_at_step: int | None = None) -> dict:
    """Train (or resume) the run described by ``cfg`` in ``cfg.out_dir``; return a summary:
    ``{"run_dir", "final_checkpoint", "steps", "tokens_seen", "final_eval_loss", "seconds", ...}``.

    ``interrupt_at_step`` raises ``KeyboardInterrupt`` right after that step (before any checkpoint
    of it), the way a kill would: the resume tests use it.
    """
    t_start = time.time()
    cfg.validate()
    distributed.ensure_initialized()
    run_dir, t, total = Path(cfg.out_dir), cfg.training, cfg.total_steps
    is_main = distributed.is_main()

    # The run directory: a new run, or (--resume) the same config continued from its latest checkpoint.
    latest = checkpoint.latest_checkpoint(run_dir)
    _check_run_dir(run_dir, latest, resume)
    if latest is not None:
        saved = from_dict(yaml.safe_load((latest / "config.yaml").read_text(encoding="utf-8")))
        _check_resume_config(cfg, saved, latest)
    jaxtools.sync("run directory checked")  # every process saw it before process 0 writes into it

    # Data and tokenizer.
    files = resolve_files(cfg.data.train_files)
    if is_main:  # the others only read the run directory (process 0's tokenizer, checkpoints)
        run_dir.mkdir(parents=True, exist_ok=True)
    tok, tok_dir, tok_source = _prepare_tokenizer(cfg, run_dir, files, is_main)
    spec = MaskSpec.from_tokenizer(tok, t.mlm_probability)
    stream = BlockStream(files, tok, t.seq_len, eval_docs=cfg.data.eval_docs,
                         shuffle_buffer_blocks=cfg.data.shuffle_buffer_blocks, seed=cfg.data.seed,
                         text_field=cfg.data.text_field, tokenize_batch_docs=cfg.data.tokenize_batch_docs,
                         eval_files=resolve_files(cfg.data.eval_files) if cfg.data.eval_files else ())
    eval_set = eval_batches(stream.eval_blocks(cfg.data.eval_blocks), min(t.batch_size, cfg.data.eval_blocks),
                            spec, cfg.data.seed) if cfg.data.eval_docs else []
    model_hash = cfg.model_hash()
    # What every checkpoint's metadata.json records about the run (in this key order).
    identity = {"seq_len": t.seq_len, "model_hash": model_hash, "data": _data_identity(files),
                "tokenizer": checkpoint.tokenizer_identity(tok_dir, tok_source, len(tok))}

    # Model, optimizer and state: fresh, a new phase from training.init_from, or resumed.
    dp = DataParallel(t.batch_size, t.grad_accum)
    rows = dp.local_rows(t.batch_size)
    log.info("topology: %s", distributed.describe(distributed.topology(t.batch_size, rows)))
    module = MaskedLM(roberta_config(cfg.model, tok), dtype=DTYPES[cfg.model.dtype])
    tx = make_optimizer(cfg)
    params = init_params(module, t.seq_len, t.seed)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(t.seed + 1)}
    metrics = MetricsLog(run_dir / METRICS_FILE, write=is_main, lr_schedule=learning_rate_schedule(cfg),
                         flops_per_token=train_flops_per_token(cfg), peak=peak_flops(cfg))
    position, tokens_seen, last_eval = Position(), 0, None
    if latest is not None:
        state = checkpoint.restore_state(latest, state, model_hash=model_hash)
        meta = checkpoint.load_metadata(latest)
        position, tokens_seen, last_eval = Position.from_dict(meta["data_position"]), int(meta["tokens_seen"]), meta.get("eval")
        metrics.keep_upto(int(meta["step"]))
        log.info("resuming from %s (step %d, %d tokens seen)", latest, meta["step"], tokens_seen)
    else:
        metrics.keep_upto(None)
        if t.init_from:
            state = _phase_start(state, cfg, model_hash)
    state = dp.replicate(state)
    start_step = int(state["step"])

    step_fn = jax.jit(make_train_step(module, tx, masked_only=t.masked_only_logits, grad_accum=t.grad_accum),
                      donate_argnums=0, out_shardings=(dp.replicated, dp.replicated))
    eval_fn = jax.jit(make_eval_step(module, masked_only=t.masked_only_logits))
    config_yaml = cfg.to_yaml()
    if is_main:
        write_text_atomic(run_dir / "config.yaml", config_yaml)
    metrics.start_window()

    # evaluate: the untrained model once, so the held-out curve starts at step 0
    if start_step == 0 and eval_set and start_step < total:
        last_eval = {"step": 0, **evaluate(eval_fn, state["params"], eval_set, dp)}
        metrics.write(last_eval)

    # a bar only on a terminal: redirected to a log, tqdm's carriage returns make one endless line,
    # so a log gets one plain line per log interval instead
    interactive = cfg.logging.progress and is_main and sys.stderr.isatty()
    bar = tqdm(total=total, initial=start_step, desc=f"pretrain {cfg.name}", unit="step",
               disable=not interactive, dynamic_ncols=True)
    batches = Prefetcher(process_batches(stream, t.batch_size, spec, seed=cfg.data.seed, rows=rows,
                                         start_step=start_step, start=position), depth=cfg.data.prefetch_batches)
    step, pos, last_ckpt = start_step, position, latest

    def how_far() -> str:  # for the message when another process of the job dies
        return (f"Stopped after step {step}; resume from {last_ckpt} with --resume" if last_ckpt
                else f"Stopped after step {step}, before the first checkpoint")

    with distributed.peer_failures(how_far), contextlib.closing(batches), bar:
        for b in batches if start_step < total else ():
            # step: one update on the global batch (this process feeds its rows); its metrics stay
            # on the device until logged
            state, step_metrics = step_fn(state, dp.put_batch(b.arrays, t.batch_size))
            step, tokens_seen, pos = b.step + 1, tokens_seen + b.tokens, b.position
            if block_log.isEnabledFor(logging.DEBUG):
                block_log.debug("process %d step %d blocks %s", jax.process_index(), step, json.dumps(b.blocks))
            metrics.add(step, step_metrics, b.tokens)
            bar.update(1)
            last = step >= total
            do_eval = bool(eval_set) and (step % cfg.logging.eval_every == 0 or last)
            do_ckpt = step % cfg.checkpointing.every_steps == 0 or last

            # log: every log_every steps, and before any evaluation or checkpoint (never save a NaN)
            if step % cfg.logging.log_every == 0 or do_eval or do_ckpt:
                record = metrics.flush(step, tokens_seen, last_ckpt)
                if record and not bar.disable:
                    bar.set_postfix(_postfix(record))
                elif record and is_main and cfg.logging.progress:
                    tqdm.write(f"step {step}/{total}: loss {record['loss']:.4f} acc {record['accuracy']:.3f} "
                               f"lr {record['learning_rate']:.2e} {record['tokens_per_s']:.0f} tok/s"
                               + (f" mfu {record['mfu']:.1%}" if "mfu" in record else ""), file=sys.stderr)

            # evaluate: the held-out loss, and a fresh loss curve
            if do_eval:
                last_eval = {"step": step, **evaluate(eval_fn, state["params"], eval_set, dp)}
                metrics.write(last_eval)
                if is_main:
                    bar.write(f"step {step}: eval loss {last_eval['eval_loss']:.4f} "
                              f"ppl {last_eval['eval_perplexity']:.1f} acc {last_eval['eval_accuracy']:.3f}")
                    _plot(run_dir)

            # checkpoint: the full state and where the data stream is, published in one rename by
            # process 0; the others wait, so no process runs ahead of a checkpoint it could lose
            if do_ckpt:
                if is_main:
                    metadata = {"tokens_seen": tokens_seen, "data_position": pos.to_dict(), "epoch": pos.epoch,
                                **identity, "eval": last_eval, "total_steps": total}
                    checkpoint.save_checkpoint(run_dir, step, state, metadata, config_yaml, tok_dir,
                                               cfg.checkpointing.keep_last)
                jaxtools.sync(f"checkpoint {step}")
                last_ckpt = checkpoint.step_dir(run_dir, step)

            # stop: after the last step (or where a test simulates a kill)
            if interrupt_at_step is not None and step >= interrupt_at_step:
                raise KeyboardInterrupt(f"interrupted after step {step} (interrupt_at_step)")
            if last:
                break

    # The summary: what the last checkpoint holds (the loop always checkpoints its last step).
    if is_main:
        _plot(run_dir)
    final_eval = last_eval or {}
    summary = {
        "run_dir": str(run_dir), "final_checkpoint": str(last_ckpt) if last_ckpt else None,
        "steps": step, "tokens_seen": tokens_seen,
        "final_eval_loss": final_eval.get("eval_loss"), "final_eval_accuracy": final_eval.get("eval_accuracy"),
        "seconds": time.time() - t_start, "epoch": pos.epoch,
    }
    if is_main:
        write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    jaxtools.sync("run finished")  # nobody exits (and ends the job) before process 0 wrote everything
    return summary


__all__ = ["train", "make_train_step", "make_optimizer", "decay_mask", "learning_rate_schedule", "DataParallel",
           "MetricsLog", "NonFiniteLossError", "read_metrics", "read_json"]
