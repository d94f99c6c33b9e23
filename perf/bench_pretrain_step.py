"""Train-step throughput of ``pretraining`` against a plain step written the way the transformers
Flax MLM example (examples/flax/language-modeling/run_mlm_flax.py) does it.

Same model (FlaxRobertaForMaskedLM layout, BERTIN's real 50,265-token vocabulary), same batch of
real web-sample text, same optimizer (optax AdamW, no decay on biases/LayerNorm, warmup + linear
decay), same run. What differs is what the project adds:

- ``plain``:  full logits over every position ([B, L, 50265]), one-hot softmax cross-entropy, the
  batch masked synchronously in numpy before each step (the example's data collator);
- ``ours (step)``:  ``pretraining``'s jitted step, masked-positions-only logits, pre-made batches;
- ``ours (loop)``:  the same step fed by the real input pipeline (streamed shards, tokenization,
  packing, masking) running in a background thread, as ``bench pretrain`` trains.

Usage:
    python perf/bench_pretrain_step.py            # tiny and small presets
    python perf/bench_pretrain_step.py --quick    # tiny only, fewer steps
    python perf/bench_pretrain_step.py --presets small --steps 10 --batch-size 32
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from bertin_bench import paths  # noqa: E402
from pretraining.config import load_config  # noqa: E402
from pretraining.data import BlockStream, MaskSpec, Prefetcher, mask_tokens, resolve_files, train_batches  # noqa: E402
from pretraining.model import MaskedLM, init_params, roberta_config  # noqa: E402
from pretraining.tokenizer import load_tokenizer  # noqa: E402
from pretraining.train import DataParallel, make_optimizer, make_train_step  # noqa: E402


def plain_train_step(model, tx):
    """run_mlm_flax.py's train_step (jit instead of pmap on one device; psum is the identity)."""

    def train_step(state, batch, dropout_rng):
        params, opt_state = state
        dropout_rng, new_dropout_rng = jax.random.split(dropout_rng)

        def loss_fn(params):
            labels = batch["labels"]
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"], params=params,
                           dropout_rng=dropout_rng, train=True)[0]
            label_mask = jnp.where(labels > 0, 1.0, 0.0)
            loss = optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, logits.shape[-1])) * label_mask
            return loss.sum() / label_mask.sum()

        loss, grad = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grad, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss, new_dropout_rng

    return train_step


def make_shards(tmp: Path, n_docs: int) -> Path:
    src = paths.data_path("web_es", "web_es_mix.jsonl.gz")
    with gzip.open(src, "rt", encoding="utf-8") as f:
        lines = list(itertools.islice(f, n_docs))
    out = tmp / "shards"
    out.mkdir()
    for i in range(2):
        with gzip.open(out / f"{i:05d}.jsonl.gz", "wt", encoding="utf-8") as g:
            g.writelines(lines[i::2])
    return out


def timed(fn, steps: int, warmup: int = 2) -> float:
    """Seconds per call after ``warmup`` calls (compilation)."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    t0 = time.perf_counter()
    for _ in range(steps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / steps


def bench_preset(name: str, shards: Path, tok, steps: int, batch_size: int | None) -> list[tuple]:
    overrides = [f"data.train_files=[{shards}]", "schedule.warmup_steps=10", "training.max_steps=1000"]
    if batch_size:
        overrides.append(f"training.batch_size={batch_size}")
    cfg = load_config(name, overrides)
    t = cfg.training
    spec = MaskSpec.from_tokenizer(tok, t.mlm_probability)
    stream = BlockStream(resolve_files(shards), tok, t.seq_len, eval_docs=0,
                         shuffle_buffer_blocks=cfg.data.shuffle_buffer_blocks, seed=0)
    blocks = np.stack([b for b, _ in itertools.islice(stream.train_blocks(), t.batch_size * 4)])
    batches = [mask_tokens(blocks[i * t.batch_size:(i + 1) * t.batch_size], np.random.default_rng(i), spec)
               for i in range(4)]
    tokens = t.batch_size * t.seq_len
    tx = make_optimizer(cfg)
    rows = []

    # --- plain (run_mlm_flax style)
    from transformers import FlaxRobertaForMaskedLM

    model = FlaxRobertaForMaskedLM(roberta_config(cfg.model, tok), seed=0)
    params = model.params
    pstate = [(params, tx.init(params)), jax.random.PRNGKey(0)]
    pstep = jax.jit(plain_train_step(model, tx), donate_argnums=0)
    it = itertools.cycle(range(4))

    def plain():
        i = next(it)
        # the example masks on the host before every step (FlaxDataCollatorForLanguageModeling)
        b = mask_tokens(blocks[i * t.batch_size:(i + 1) * t.batch_size], np.random.default_rng(i), spec)
        b = {k: b[k] for k in ("input_ids", "attention_mask", "labels")}
        pstate[0], loss, pstate[1] = pstep(pstate[0], b, pstate[1])
        return loss

    s_plain = timed(plain, steps)
    rows.append((name, "plain (run_mlm_flax)", s_plain, tokens / s_plain, 1.0))
    del pstate, model, params

    # --- ours: the project's step on pre-made batches
    dp = DataParallel(t.batch_size, t.grad_accum)
    module = MaskedLM(roberta_config(cfg.model, tok))
    p = init_params(module, t.seq_len, 0)
    state = [dp.replicate({"step": jnp.zeros((), jnp.int32), "params": p, "opt_state": tx.init(p),
                           "rng": jax.random.PRNGKey(1)})]
    step = jax.jit(make_train_step(module, tx, masked_only=True, grad_accum=t.grad_accum), donate_argnums=0,
                   out_shardings=(dp.replicated, dp.replicated))
    placed = [dp.put_batch(b) for b in batches]
    it2 = itertools.cycle(placed)

    def ours():
        state[0], m = step(state[0], next(it2))
        return m["loss"]

    s_ours = timed(ours, steps)
    rows.append((name, "ours (step)", s_ours, tokens / s_ours, s_plain / s_ours))

    # --- ours: the same step fed by the real streaming pipeline in a background thread
    pre = Prefetcher(train_batches(stream, t.batch_size, spec, seed=0), depth=cfg.data.prefetch_batches)

    def loop():
        _, b, _ = next(pre)
        state[0], m = step(state[0], dp.put_batch(b))
        return m["loss"]

    s_loop = timed(loop, steps)
    pre.close()
    rows.append((name, "ours (loop + input pipeline)", s_loop, tokens / s_loop, s_plain / s_loop))
    return rows, cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny preset only, 5 timed steps")
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant (after 2 warm-up steps)")
    ap.add_argument("--batch-size", type=int, default=16,
                    help="global batch (sequences); the presets' own batches are too slow with full logits on CPU")
    args = ap.parse_args()
    presets, steps = (["tiny"], 5) if args.quick else (args.presets, args.steps)
    tok = load_tokenizer(paths.data_path("tokenizers", "bertin-roberta-base-spanish"))
    print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; jax {jax.__version__}; "
          f"batch {args.batch_size} x seq 128; {steps} timed steps", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        shards = make_shards(Path(tmp), 3000)
        rows = []
        for name in presets:
            r, cfg = bench_preset(name, shards, tok, steps, args.batch_size)
            m = cfg.model
            print(f"  {name}: {m.num_hidden_layers} layers, hidden {m.hidden_size}, vocab {m.vocab_size}", flush=True)
            rows += r
    print()
    print(f"| {'preset':<6} | {'variant':<30} | {'s/step':>8} | {'tokens/s':>9} | {'vs plain':>8} |")
    print(f"|{'-' * 8}|{'-' * 32}|{'-' * 10}|{'-' * 11}|{'-' * 10}|")
    for name, variant, s, tps, x in rows:
        print(f"| {name:<6} | {variant:<30} | {s:8.3f} | {tps:9.0f} | {x:7.2f}x |")


if __name__ == "__main__":
    main()
