"""The training loop: one jitted, data-parallel step; evaluation, logging, checkpoints, resume.

Data parallelism uses a 1-D ``jax.sharding.Mesh`` over all devices: parameters and optimizer
state are replicated, the global batch (``training.batch_size``, whatever the device count) is
sharded along its first axis, and XLA inserts the gradient all-reduce. Several hosts join through
``jax.distributed.initialize()`` when the usual environment says so; every host builds the same
global batch from the (deterministic) stream and feeds its own slice.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from bertin_bench.io import read_json, write_text_atomic
from bertin_bench.provenance import hash_file
from pretraining import checkpoint as ckpt_lib
from pretraining.config import PretrainConfig, from_dict
from pretraining.data import BlockStream, MaskSpec, Position, Prefetcher, eval_batches, resolve_files, train_batches
from pretraining.plots import METRICS_FILE, read_metrics  # noqa: F401 (re-exported: train's public API)
from pretraining.model import DTYPES, MaskedLM, batch_loss_sums, init_params, roberta_config
from bertin_bench import paths
from pretraining.tokenizer import check_vocab, load_tokenizer, train_bpe

log = logging.getLogger(__name__)

# Peak dense bf16 FLOP/s per device for the MFU estimate (vendor datasheets, no sparsity).
PEAK_FLOPS = {"h100": 989e12, "h200": 989e12, "a100": 312e12, "l4": 121e12, "a10": 125e12,
              "v100": 125e12, "tpu v4": 275e12, "tpu v5 lite": 197e12, "tpu v5e": 197e12, "tpu v5p": 459e12}


class NonFiniteLossError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- set-up helpers

def maybe_initialize_distributed() -> None:
    """Join a multi-host job when the environment describes one (explicit coordinator, or SLURM /
    Open MPI with several tasks); a single process does nothing."""
    if getattr(jax.distributed, "is_initialized", lambda: False)():
        return
    explicit = os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("COORDINATOR_ADDRESS")
    slurm = int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_NODELIST" in os.environ
    mpi = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    if explicit or slurm or mpi:
        jax.distributed.initialize()
        log.info("process %d of %d", jax.process_index(), jax.process_count())


def decay_mask(params) -> Any:
    """Weight decay on matrices and embeddings only: never on biases or LayerNorm scales."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key in ("kernel", "embedding"), params)


def learning_rate_schedule(cfg: PretrainConfig) -> optax.Schedule:
    """Linear warm-up to the peak, then linear decay to ``end_learning_rate`` at the last step."""
    total, warmup = cfg.total_steps, cfg.schedule.warmup_steps
    peak, end = cfg.optimizer.learning_rate, cfg.schedule.end_learning_rate
    decay = optax.linear_schedule(peak, end, max(1, total - warmup))
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


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


class DataParallel:
    """The device mesh and how arrays are placed on it."""

    def __init__(self, batch_size: int, grad_accum: int = 1, devices: list | None = None):
        devices = jax.devices() if devices is None else devices
        self.mesh = Mesh(np.array(devices), ("data",))
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P("data"))
        n = len(devices)
        if batch_size % n or (batch_size // grad_accum) % n:
            raise ValueError(f"training.batch_size={batch_size} (micro-batch {batch_size // grad_accum}) "
                             f"must be divisible by the {n} devices")

    def put_batch(self, batch: dict) -> dict:
        """Place a global host batch; each process contributes its own rows."""
        i, n = jax.process_index(), jax.process_count()
        out = {}
        for k, v in batch.items():
            rows = len(v) // n
            out[k] = jax.make_array_from_process_local_data(self.sharded, v[i * rows:(i + 1) * rows], v.shape)
        return out

    def replicate(self, tree):
        return jax.device_put(tree, self.replicated)


def evaluate(eval_fn, params, batches: list[dict], dp: DataParallel) -> dict:
    s = w = c = 0.0
    for b in batches:
        bs, bw, bc = jax.device_get(eval_fn(params, dp.put_batch(b)))
        s, w, c = s + float(bs), w + float(bw), c + float(bc)
    loss = s / max(w, 1.0)
    return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50.0)), "eval_accuracy": c / max(w, 1.0),
            "eval_tokens": int(sum(int(b["attention_mask"].sum()) for b in batches)), "eval_predictions": int(w)}


# ----------------------------------------------------------------------------- the loop

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


def _data_identity(files: list[Path]) -> dict:
    return {"files": [str(f.resolve()) for f in files], "sha256": [hash_file(f) for f in files]}


def _prepare_tokenizer(cfg: PretrainConfig, run_dir: Path, files: list[Path]) -> tuple[Any, Path, str]:
    if cfg.tokenizer.path:
        tok_dir = paths.resolve(cfg.tokenizer.path)
        source = cfg.tokenizer.path
    else:
        tok_dir = run_dir / "tokenizer"
        source = "trained byte-level BPE"
        if not (tok_dir / "tokenizer.json").exists():
            log.info("training a %d-token byte-level BPE on %d shard(s)", cfg.tokenizer.vocab_size, len(files))
            train_bpe(files, tok_dir, cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency,
                      max_docs=cfg.tokenizer.train_docs, text_field=cfg.data.text_field)
    tok = load_tokenizer(tok_dir)
    check_vocab(tok, cfg.model.vocab_size)
    return tok, tok_dir, source


def _rewrite_metrics(path: Path, upto_step: int) -> None:
    """Drop log lines after the checkpoint we resume from (they will be produced again)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= upto_step]
    write_text_atomic(path, "".join(line + "\n" for line in keep))


def train(cfg: PretrainConfig, *, resume: bool = False, interrupt_at_step: int | None = None) -> dict:
    """Train (or resume) the run described by ``cfg`` in ``cfg.out_dir``; return a summary:
    ``{"run_dir", "final_checkpoint", "steps", "tokens_seen", "final_eval_loss", "seconds", ...}``.

    ``interrupt_at_step`` raises ``KeyboardInterrupt`` right after that step (before any checkpoint
    of it), the way a kill would: the resume tests use it.
    """
    t_start = time.time()
    cfg.validate()
    maybe_initialize_distributed()
    run_dir = Path(cfg.out_dir)
    total = cfg.total_steps
    latest = ckpt_lib.latest_checkpoint(run_dir)
    if latest is not None and not resume:
        raise FileExistsError(f"{run_dir} already has checkpoints (latest {latest.name}): pass --resume to "
                              "continue it, or --out DIR for a new run (nothing was overwritten)")
    if resume and latest is not None:
        _check_resume_config(cfg, from_dict(_load_yaml(latest / "config.yaml")), latest)
    files = resolve_files(cfg.data.train_files)
    run_dir.mkdir(parents=True, exist_ok=True)
    tok, tok_dir, tok_source = _prepare_tokenizer(cfg, run_dir, files)
    data_identity = _data_identity(files)
    tok_identity = ckpt_lib.tokenizer_identity(tok_dir, tok_source, len(tok))
    t = cfg.training
    spec = MaskSpec.from_tokenizer(tok, t.mlm_probability)
    stream = BlockStream(files, tok, t.seq_len, eval_docs=cfg.data.eval_docs,
                         shuffle_buffer_blocks=cfg.data.shuffle_buffer_blocks, seed=cfg.data.seed,
                         text_field=cfg.data.text_field, tokenize_batch_docs=cfg.data.tokenize_batch_docs,
                         eval_files=resolve_files(cfg.data.eval_files) if cfg.data.eval_files else ())
    eval_set = eval_batches(stream.eval_blocks(cfg.data.eval_blocks), min(t.batch_size, cfg.data.eval_blocks),
                            spec, cfg.data.seed) if cfg.data.eval_docs else []

    dp = DataParallel(t.batch_size, t.grad_accum)
    module = MaskedLM(roberta_config(cfg.model, tok), dtype=DTYPES[cfg.model.dtype])
    tx = make_optimizer(cfg)
    params = init_params(module, t.seq_len, t.seed)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(t.seed + 1)}
    model_hash = cfg.model_hash()
    position, tokens_seen = Position(), 0
    metrics_path = run_dir / METRICS_FILE
    if resume and latest is not None:
        state = ckpt_lib.restore_state(latest, state, model_hash=model_hash)
        meta = ckpt_lib.load_metadata(latest)
        position, tokens_seen = Position.from_dict(meta["data_position"]), int(meta["tokens_seen"])
        _rewrite_metrics(metrics_path, int(meta["step"]))
        log.info("resuming from %s (step %d, %d tokens seen)", latest, meta["step"], tokens_seen)
    else:
        if metrics_path.exists():
            metrics_path.unlink()  # a fresh run with no checkpoint: stale log of a crashed attempt
        if t.init_from:
            init_dir = Path(t.init_from)
            if ckpt_lib.latest_checkpoint(init_dir) is not None and not (init_dir / "metadata.json").exists():
                init_dir = ckpt_lib.latest_checkpoint(init_dir)
            prev = ckpt_lib.restore_state(init_dir, state, model_hash=model_hash)
            state["params"] = prev["params"]
            if not t.reset_optimizer:
                state["opt_state"] = prev["opt_state"]
            log.info("phase start from %s (%s optimizer state)", init_dir, "fresh" if t.reset_optimizer else "kept")
    state = dp.replicate(state)
    start_step = int(state["step"])

    step_fn = jax.jit(make_train_step(module, tx, masked_only=t.masked_only_logits, grad_accum=t.grad_accum),
                      donate_argnums=0, out_shardings=(dp.replicated, dp.replicated))
    eval_fn = jax.jit(make_eval_step(module, masked_only=t.masked_only_logits))
    flops_token = train_flops_per_token(cfg)
    peak = peak_flops(cfg)
    config_yaml = cfg.to_yaml()
    write_text_atomic(run_dir / "config.yaml", config_yaml)
    is_main = jax.process_index() == 0

    last_eval: dict | None = None
    last_ckpt = latest if resume else None
    pending: list[tuple[int, Any]] = []  # (step, device metrics) not yet checked/logged
    window_tokens, window_t0 = 0, time.time()

    def log_line(record: dict) -> None:
        if is_main:
            with open(metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def flush(step_now: int) -> dict | None:
        """Fetch pending metrics, stop on a non-finite loss (naming the step), log the last one."""
        nonlocal window_tokens, window_t0
        if not pending:
            return None
        fetched = jax.device_get([m for _, m in pending])
        for (s, _), m in zip(pending, fetched):
            if not math.isfinite(float(m["loss"])):
                where = f"the last good checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint was written"
                raise NonFiniteLossError(f"training loss is {float(m['loss'])} at step {s}: stopped; {where} "
                                         "(nothing after it was saved; lower optimizer.learning_rate or set "
                                         "optimizer.max_grad_norm)")
        elapsed = max(time.time() - window_t0, 1e-9)
        rec = {"step": step_now, "loss": float(np.mean([float(m["loss"]) for m in fetched])),
               "accuracy": float(np.mean([float(m["accuracy"]) for m in fetched])),
               "grad_norm": float(fetched[-1]["grad_norm"]), "learning_rate": float(lr_schedule(step_now - 1)),
               "tokens_seen": tokens_seen, "tokens_per_s": window_tokens / elapsed}
        if peak:
            rec["mfu"] = window_tokens / elapsed * flops_token / peak
        pending.clear()
        window_tokens, window_t0 = 0, time.time()
        log_line(rec)
        return rec

    def save(step_now: int, pos: Position) -> Path:
        meta = {"tokens_seen": tokens_seen, "data_position": pos.to_dict(), "epoch": pos.epoch,
                "seq_len": t.seq_len, "model_hash": model_hash, "data": data_identity,
                "tokenizer": tok_identity, "eval": last_eval, "total_steps": total}
        if not is_main:
            return run_dir
        return ckpt_lib.save_checkpoint(run_dir, step_now, state, meta, config_yaml, tok_dir,
                                        cfg.checkpointing.keep_last)

    lr_schedule = learning_rate_schedule(cfg)
    if start_step == 0 and eval_set and start_step < total:
        last_eval = {"step": 0, **evaluate(eval_fn, state["params"], eval_set, dp)}
        log_line(last_eval)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=start_step, desc=f"pretrain {cfg.name}", unit="step",
               disable=not (cfg.logging.progress and is_main), dynamic_ncols=True)
    batches = Prefetcher(train_batches(stream, t.batch_size, spec, seed=cfg.data.seed, start_step=start_step,
                                       start=position), depth=cfg.data.prefetch_batches)
    step_now, pos = start_step, position
    try:
        for batch_step, batch, pos in batches if start_step < total else ():
            n_tok = int(batch["attention_mask"].sum())
            state, m = step_fn(state, dp.put_batch(batch))
            step_now = batch_step + 1
            tokens_seen += n_tok
            window_tokens += n_tok
            pending.append((step_now, m))
            bar.update(1)
            done = step_now >= total
            do_eval = eval_set and (step_now % cfg.logging.eval_every == 0 or done)
            do_ckpt = step_now % cfg.checkpointing.every_steps == 0 or done
            if step_now % cfg.logging.log_every == 0 or do_eval or do_ckpt:
                rec = flush(step_now)
                if rec:
                    post = {"loss": f"{rec['loss']:.3f}", "tok/s": f"{rec['tokens_per_s']:.0f}"}
                    if "mfu" in rec:
                        post["mfu"] = f"{rec['mfu']:.1%}"
                    bar.set_postfix(post)
            if do_eval:
                last_eval = {"step": step_now, **evaluate(eval_fn, state["params"], eval_set, dp)}
                log_line(last_eval)
                bar.write(f"step {step_now}: eval loss {last_eval['eval_loss']:.4f} "
                          f"ppl {last_eval['eval_perplexity']:.1f} acc {last_eval['eval_accuracy']:.3f}")
                if is_main:
                    _plot(run_dir)
            if do_ckpt:
                last_ckpt = save(step_now, pos)
            if interrupt_at_step is not None and step_now >= interrupt_at_step:
                raise KeyboardInterrupt(f"interrupted after step {step_now} (interrupt_at_step)")
            if done:
                break
    finally:
        batches.close()
        bar.close()
    if start_step >= total:
        last_ckpt = latest
    if is_main:
        _plot(run_dir)
    final_meta = ckpt_lib.load_metadata(last_ckpt) if last_ckpt and is_main else {}
    final_eval = (final_meta.get("eval") or {}) if last_ckpt else (last_eval or {})
    summary = {
        "run_dir": str(run_dir), "final_checkpoint": str(last_ckpt) if last_ckpt else None,
        "steps": int(final_meta.get("step", step_now)), "tokens_seen": int(final_meta.get("tokens_seen", tokens_seen)),
        "final_eval_loss": final_eval.get("eval_loss"), "final_eval_accuracy": final_eval.get("eval_accuracy"),
        "seconds": time.time() - t_start, "epoch": pos.epoch,
    }
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _load_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _plot(run_dir: Path) -> None:
    from pretraining.plots import plot_loss_curve

    try:
        plot_loss_curve(run_dir / METRICS_FILE, run_dir / "loss_curve.png")
    except Exception as err:  # noqa: BLE001 - a plot never stops training
        log.warning("could not draw the loss curve: %s", err)


__all__ = ["train", "make_train_step", "make_optimizer", "decay_mask", "learning_rate_schedule", "DataParallel",
           "NonFiniteLossError", "read_metrics", "read_json"]
