"""Fine-tuning throughput: ``benchmark.finetune`` vs a plain loop written the way transformers'
``examples/flax/token-classification/run_flax_ner.py`` does it, same tiny model, batch and data, in
one process, on the CPU by default.

The reference loop follows the example: tokenize with ``padding="max_length"`` (the example's Flax
collator stacks fixed-shape arrays), a ``flax.training.train_state.TrainState`` with optax AdamW and a
linear schedule, ``jax.pmap`` over local devices with ``shard`` and ``pmean`` of the gradients, and
``optax.softmax_cross_entropy`` on one-hot labels.

Throughput is training examples per second over the epochs after the first (the first epoch
includes XLA compilation, reported separately as "first epoch s"). Target: ours >= 1.0x.

    python perf/bench_finetune.py            # 2048 CoNLL-2002 NER sentences, 3 epochs
    python perf/bench_finetune.py --quick    # 256 sentences, 3 epochs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

TINY = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=130, type_vocab_size=1)


def build_tiny(tokenizer_dir: Path, out: Path) -> Path:
    from transformers import FlaxRobertaForMaskedLM, RobertaConfig, RobertaTokenizerFast

    tok = RobertaTokenizerFast.from_pretrained(str(tokenizer_dir))
    config = RobertaConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, **TINY)
    FlaxRobertaForMaskedLM(config, seed=0).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def run_ours(model_dir: Path, n_train: int, epochs: int, batch_size: int, max_length: int):
    from benchmark.finetune import finetune
    from benchmark.loaders import load_task_data
    from benchmark.models import load_model, load_tokenizer, resolve_model
    from benchmark.tasks import get_task

    spec = get_task("ner_conll2002_es")
    resolved = resolve_model(model_dir)
    tok, _ = load_tokenizer(resolved)
    data = load_task_data(spec, source="local", limit_train=n_train, limit_eval=16)
    model = load_model(resolved, spec.task_type, spec.labels, seed=0)
    hp = spec.hyperparameters({"epochs": epochs, "batch_size": batch_size, "max_length": max_length})
    out = finetune(model, tok, data, hp, seed=0, progress=False)
    secs = [e["train_seconds"] for e in out.dev_history]
    return secs, out.dev_history[-1]["train_loss"]


def run_reference(model_dir: Path, n_train: int, epochs: int, batch_size: int, max_length: int):
    """The run_flax_ner.py way (trimmed to the training loop)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import jax_utils
    from flax.training import train_state
    from flax.training.common_utils import onehot, shard
    from transformers import FlaxAutoModelForTokenClassification

    from benchmark.loaders import read_conll2002
    from benchmark.models import load_tokenizer, resolve_model
    from benchmark.tasks import CONLL2002_NER_LABELS
    from bertin_bench import paths

    # Same tokenizer object as ours (with BERTIN's missing special tokens attached), so both
    # loops see identical token ids; only the training loop differs.
    tokenizer, _ = load_tokenizer(resolve_model(model_dir))
    sents = read_conll2002(paths.data_path("conll2002", "esp.train"), 2, CONLL2002_NER_LABELS)[:n_train]
    num_labels = len(CONLL2002_NER_LABELS)

    # tokenize_and_align_labels from the example: padding="max_length", first subword labelled.
    enc = tokenizer([s["tokens"] for s in sents], max_length=max_length, padding="max_length", truncation=True,
                    is_split_into_words=True)
    labels = []
    for i, s in enumerate(sents):
        prev, row = None, []
        for w in enc.word_ids(i):
            row.append(-100 if w is None or w == prev else s["labels"][w])
            prev = w
        labels.append(row)
    dataset = {"input_ids": np.array(enc["input_ids"]), "attention_mask": np.array(enc["attention_mask"]),
               "labels": np.array(labels)}

    model = FlaxAutoModelForTokenClassification.from_pretrained(str(model_dir), num_labels=num_labels, seed=0)
    n_dev = jax.local_device_count()
    steps_per_epoch = n_train // batch_size
    total = steps_per_epoch * epochs
    schedule = optax.linear_schedule(5e-5, 0.0, total)

    def decay_mask_fn(params):
        from flax import traverse_util

        flat = traverse_util.flatten_dict(params)
        return traverse_util.unflatten_dict({p: (p[-1] != "bias" and p[-2:] != ("LayerNorm", "scale")) for p in flat})

    tx = optax.adamw(learning_rate=schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, mask=decay_mask_fn)

    class TrainState(train_state.TrainState):
        pass

    state = TrainState.create(apply_fn=model.__call__, params=model.params, tx=tx)

    def cross_entropy_loss(logits, labels):
        xentropy = optax.softmax_cross_entropy(logits, onehot(labels, num_classes=num_labels))
        return jnp.mean(xentropy)

    def train_step(state, batch, dropout_rng):
        dropout_rng, new_dropout_rng = jax.random.split(dropout_rng)
        targets = batch.pop("labels")

        def loss_fn(params):
            logits = state.apply_fn(**batch, params=params, dropout_rng=dropout_rng, train=True)[0]
            return cross_entropy_loss(logits, targets)

        loss, grad = jax.value_and_grad(loss_fn)(state.params)
        grad = jax.lax.pmean(grad, "batch")
        new_state = state.apply_gradients(grads=grad)
        return new_state, jax.lax.pmean({"loss": loss}, axis_name="batch"), new_dropout_rng

    p_train_step = jax.pmap(train_step, axis_name="batch", donate_argnums=(0,))
    state = jax_utils.replicate(state)
    rng = jax.random.PRNGKey(0)
    dropout_rngs = jax.random.split(rng, n_dev)

    def train_data_collator(rng, data, batch_size):
        perms = jax.random.permutation(rng, len(data["input_ids"]))[: steps_per_epoch * batch_size]
        for perm in np.asarray(perms).reshape((steps_per_epoch, batch_size)):
            yield shard({k: v[perm] for k, v in data.items()})

    secs = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        rng, input_rng = jax.random.split(rng)
        for batch in train_data_collator(input_rng, dataset, batch_size):
            state, metrics, dropout_rngs = p_train_step(state, batch, dropout_rngs)
        loss = float(jax_utils.unreplicate(metrics)["loss"])
        secs.append(time.perf_counter() - t0)
    return secs, loss


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="256 sentences instead of 2048")
    ap.add_argument("--n-train", type=int, help="training sentences (default 2048, quick 256)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args(argv)
    n = args.n_train or (256 if args.quick else 2048)
    n -= n % args.batch_size  # the reference drops the last partial batch; keep the work equal

    from bertin_bench import paths

    tok_dir = paths.data_path("tokenizers", "bertin-roberta-base-spanish")
    import jax
    import transformers

    transformers.logging.set_verbosity_error()  # "newly initialized head" is expected here

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny(tok_dir, Path(tmp) / "tiny")
        rows = []
        for name, fn in (("plain loop (run_flax_ner.py style, pad to max)", run_reference),
                         ("benchmark.finetune", run_ours)):
            secs, loss = fn(model_dir, n, args.epochs, args.batch_size, args.max_length)
            steady = n * (len(secs) - 1) / sum(secs[1:]) if len(secs) > 1 else n / secs[0]
            rows.append((name, secs[0], steady, loss))
    print(f"\nFine-tuning throughput: CoNLL-2002 NER, tiny RoBERTa (2x32), {n} sentences, batch {args.batch_size}, "
          f"max length {args.max_length}, {args.epochs} epochs, {jax.local_device_count()} {jax.devices()[0].platform} device(s)")
    print(f"{'implementation':<48} {'first epoch s':>14} {'examples/s':>12}")
    for name, first, steady, _ in rows:
        print(f"{name:<48} {first:>14.1f} {steady:>12.1f}")
    ratio = rows[1][2] / rows[0][2]
    print(f"speed-up (examples/s after the first epoch): {ratio:.2f}x  (target >= 1.0x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
