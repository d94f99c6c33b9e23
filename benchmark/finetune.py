"""Fine-tuning in Flax: token classification (first-subword labels) and sequence classification.

One function, ``finetune``, trains a fresh task head on a checkpoint for one seed: AdamW with a
linear warmup/decay schedule, dev evaluation after every epoch, the best dev epoch's parameters
kept in host memory, and test scored with them.

Speed notes (CPU matters here: the test suite and quick runs fine-tune on 2 cores):
- batches are padded to the longest example rounded up to a multiple of ``BUCKET`` tokens instead
  of always to ``max_length``; CoNLL sentences average ~35 subwords, so this does ~3x less work
  than padding to 128, at the cost of at most ``max_length / BUCKET`` compilations per split;
- the last, short batch is filled with zero-weight rows so every step has the same global batch;
- data parallel over all local devices with ``jax.sharding``: parameters replicated, the batch
  split on its first axis; the global batch does not depend on the number of devices.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.tasks import TOKEN, TaskSpec

log = logging.getLogger(__name__)

BUCKET = 32
IGNORE = -100


@dataclass
class Encoded:
    """A tokenized split: ragged token ids, labels aligned to tokens, and (token tasks) where each
    word's first subword is, -1 for words lost to truncation."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    labels: list[np.ndarray] | np.ndarray  # token tasks: per-token labels (-100 ignored)
    gold: list  # word-level gold label ids (token tasks) or example label ids
    word_positions: list[np.ndarray] | None = None
    truncation: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(ds, spec: TaskSpec, tokenizer, max_length: int) -> Encoded:
    """Tokenize a split; truncation is counted (examples, and words that lost their label)."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "sequence longer than max" is what we count here
    try:
        if spec.task_type == TOKEN:
            return _encode_tokens(ds, tokenizer, max_length)
        return _encode_pairs(ds, spec, tokenizer, max_length)
    finally:
        transformers.logging.set_verbosity(verbosity)


def _encode_tokens(ds, tokenizer, max_length: int) -> Encoded:
    words, gold = [list(x) for x in ds["tokens"]], [list(x) for x in ds["labels"]]
    enc = tokenizer(words, is_split_into_words=True, truncation=False)
    ids_out, labels_out, positions_out = [], [], []
    truncated_examples = truncated_words = 0
    for i, ids in enumerate(enc["input_ids"]):
        word_ids = enc.word_ids(i)
        if len(ids) > max_length:
            # Keep the final special token (</s> or [SEP]) so the input still looks like training data.
            truncated_examples += 1
            ids = ids[: max_length - 1] + ids[-1:]
            word_ids = word_ids[: max_length - 1] + [None]
        labels = np.full(len(ids), IGNORE, dtype=np.int32)
        positions = np.full(len(gold[i]), -1, dtype=np.int32)
        previous = None
        for pos, w in enumerate(word_ids):
            if w is not None and w != previous:
                labels[pos] = gold[i][w]
                positions[w] = pos
            previous = w
        truncated_words += int((positions < 0).sum())
        ids_out.append(np.asarray(ids, dtype=np.int32))
        labels_out.append(labels)
        positions_out.append(positions)
    return Encoded(
        ids_out, None, labels_out, [list(g) for g in gold], positions_out,
        {"examples": len(ids_out), "truncated_examples": truncated_examples, "words": sum(len(g) for g in gold),
         "unscored_words": truncated_words},
    )


def _encode_pairs(ds, spec: TaskSpec, tokenizer, max_length: int) -> Encoded:
    texts = [list(ds[c]) for c in spec.text_columns]
    full = tokenizer(*texts, truncation=False)
    truncated = sum(len(x) > max_length for x in full["input_ids"])
    enc = tokenizer(*texts, truncation=True, max_length=max_length)
    ids = [np.asarray(x, dtype=np.int32) for x in enc["input_ids"]]
    tt = [np.asarray(x, dtype=np.int32) for x in enc["token_type_ids"]] if "token_type_ids" in enc else None
    gold = list(ds["labels"])
    return Encoded(ids, tt, np.asarray(gold, dtype=np.int32), gold, None,
                   {"examples": len(ids), "truncated_examples": int(truncated)})


def _pad_length(lengths: np.ndarray, max_length: int) -> int:
    longest = int(lengths.max()) if len(lengths) else 1
    return min(max_length, -(-longest // BUCKET) * BUCKET)


def make_batch(enc: Encoded, rows: np.ndarray, batch_size: int, pad_id: int, max_length: int, token_task: bool) -> dict:
    """Rows padded to a bucketed length; missing rows (last batch) get weight 0."""
    length = _pad_length(np.array([len(enc.input_ids[r]) for r in rows]), max_length)
    ids = np.full((batch_size, length), pad_id, dtype=np.int32)
    mask = np.zeros((batch_size, length), dtype=np.int32)
    tt = np.zeros((batch_size, length), dtype=np.int32) if enc.token_type_ids is not None else None
    if token_task:
        labels = np.full((batch_size, length), IGNORE, dtype=np.int32)
    else:
        labels = np.zeros((batch_size,), dtype=np.int32)
    weights = np.zeros(labels.shape, dtype=np.float32)
    for j, r in enumerate(rows):
        n = len(enc.input_ids[r])
        ids[j, :n] = enc.input_ids[r]
        mask[j, :n] = 1
        if tt is not None:
            tt[j, :n] = enc.token_type_ids[r]
        if token_task:
            labels[j, :n] = enc.labels[r]
            weights[j, :n] = enc.labels[r] != IGNORE
        else:
            labels[j] = enc.labels[r]
            weights[j] = 1.0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels, "weights": weights}
    if tt is not None:
        batch["token_type_ids"] = tt
    return batch


class Trainer:
    """The jitted train and predict steps for one model, data parallel over local devices."""

    def __init__(self, model, tx, token_task: bool):
        import jax
        import jax.numpy as jnp
        import optax

        from bertin_bench.jaxtools import DataParallel, masked_mean_loss

        self.model = model
        self.parallel = DataParallel(jax.local_devices())
        self.devices = self.parallel.devices
        self.data_sharding = self.parallel.sharded
        self.replicated = self.parallel.replicated

        def forward(params, batch, rng, train):
            kwargs = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], params=params,
                         dropout_rng=rng, train=train, **kwargs)[0]

        def loss_fn(params, batch, rng):
            return masked_mean_loss(forward(params, batch, rng, True), batch["labels"], batch["weights"])

        def train_step(params, opt_state, batch, rng):
            rng, dropout_rng = jax.random.split(rng)
            loss, grads = jax.value_and_grad(loss_fn)(params, batch, dropout_rng)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss, rng

        def predict_step(params, batch):
            return jnp.argmax(forward(params, batch, None, False), axis=-1)

        self.train_step = jax.jit(train_step, donate_argnums=(0, 1))
        self.predict_step = jax.jit(predict_step)

    def put_batch(self, batch: dict) -> dict:
        return self.parallel.put_batch(batch)

    def put_replicated(self, tree):
        return self.parallel.replicate(tree)


def adamw(hp: dict, total_steps: int):
    """AdamW with linear warmup then linear decay to 0; no weight decay on biases and LayerNorm."""
    import optax

    from bertin_bench.jaxtools import decay_mask, warmup_linear_schedule

    schedule = warmup_linear_schedule(hp["learning_rate"], total_steps, int(hp["warmup_ratio"] * total_steps))
    return optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=hp["weight_decay"], mask=decay_mask)


@dataclass
class FinetuneOutput:
    dev_history: list[dict]
    best_epoch: int
    dev_metrics: dict
    test_metrics: dict
    test_gold: list
    test_pred: list
    train_seconds: float
    eval_seconds: float
    examples_per_second: float
    train_examples_seen: int
    steps: int
    n_devices: int
    truncation: dict


def predict(trainer: Trainer, params, enc: Encoded, spec: TaskSpec, hp: dict, pad_id: int, fallback: int) -> list:
    """Predicted label ids per example (word-level for token tasks; words without a subword inside
    the max length get ``fallback``, and are counted in the truncation record)."""
    token_task = spec.task_type == TOKEN
    bs = _round_to_devices(hp["eval_batch_size"], len(trainer.devices))
    order = np.argsort([len(x) for x in enc.input_ids], kind="stable")  # similar lengths together
    preds: list[Any] = [None] * len(enc)
    for start in range(0, len(order), bs):
        rows = order[start:start + bs]
        batch = make_batch(enc, rows, bs, pad_id, hp["max_length"], token_task)
        batch.pop("labels"), batch.pop("weights")
        out = np.asarray(trainer.predict_step(params, trainer.put_batch(batch)))
        for j, r in enumerate(rows):
            if token_task:
                pos = enc.word_positions[r]
                preds[r] = [int(out[j, p]) if p >= 0 else fallback for p in pos]
            else:
                preds[r] = int(out[j])
    return preds


def _round_to_devices(batch_size: int, n_devices: int) -> int:
    return -(-batch_size // n_devices) * n_devices


_TRAINERS: dict = {}
_TRAINER_CACHE_SIZE = 4


def _trainer_for(model, hp: dict, total_steps: int, token_task: bool):
    """Reuse the jitted steps across seeds (and models of the same architecture) for the same task
    and hyperparameters: the steps take parameters as arguments, so only compiled code is shared,
    and XLA compiles once per padded length instead of once per seed."""
    import json

    key = (model.config.to_json_string(), json.dumps(hp, sort_keys=True), total_steps, token_task)
    if key in _TRAINERS:
        _TRAINERS[key] = _TRAINERS.pop(key)  # most recently used last
    else:
        while len(_TRAINERS) >= _TRAINER_CACHE_SIZE:
            _TRAINERS.pop(next(iter(_TRAINERS)))
        tx = adamw(hp, total_steps)
        _TRAINERS[key] = (Trainer(model, tx, token_task), tx)
    return _TRAINERS[key]


def finetune(model, tokenizer, data, hp: dict, seed: int, progress: bool | None = None) -> FinetuneOutput:
    """Fine-tune ``model`` (a Flax model with a fresh head) on ``data`` (a ``loaders.TaskData``)."""
    import jax
    from tqdm.auto import tqdm

    from benchmark import metrics

    spec = data.spec
    token_task = spec.task_type == TOKEN
    n_dev = len(jax.local_devices())
    if hp["batch_size"] % n_dev:
        raise ValueError(f"batch_size {hp['batch_size']} is not divisible by the {n_dev} local devices")
    enc = {split: encode(getattr(data, split), spec, tokenizer, hp["max_length"]) for split in ("train", "validation", "test")}
    pad_id = tokenizer.pad_token_id
    # Words lost to truncation get the "outside" label for NER, else the most frequent train label.
    train_counts = np.bincount(np.concatenate([np.asarray(g).ravel() for g in enc["train"].gold]), minlength=len(spec.labels))
    fallback = spec.labels.index("O") if "O" in spec.labels else int(train_counts.argmax())

    bs = hp["batch_size"]
    steps_per_epoch = -(-len(enc["train"]) // bs)
    total_steps = steps_per_epoch * hp["epochs"]
    trainer, tx = _trainer_for(model, hp, total_steps, token_task)
    params = trainer.put_replicated(model.params)
    opt_state = trainer.put_replicated(tx.init(model.params))
    rng = trainer.put_replicated(jax.random.PRNGKey(seed))

    history, best, best_score, best_epoch = [], None, -np.inf, 0
    train_seconds = eval_seconds = 0.0
    seen = 0
    shuffle = np.random.default_rng(seed)
    for epoch in range(1, hp["epochs"] + 1):
        order = shuffle.permutation(len(enc["train"]))
        t0 = time.perf_counter()
        bar = tqdm(total=len(order), desc=f"{spec.name} seed {seed} epoch {epoch}/{hp['epochs']}", unit="ex",
                   disable=None if progress is None else not progress, leave=False)
        losses = []
        for start in range(0, len(order), bs):
            rows = order[start:start + bs]
            batch = trainer.put_batch(make_batch(enc["train"], rows, bs, pad_id, hp["max_length"], token_task))
            params, opt_state, loss, rng = trainer.train_step(params, opt_state, batch, rng)
            losses.append(loss)
            bar.update(len(rows))
            if len(losses) % 20 == 0:
                bar.set_postfix(loss=f"{float(loss):.3f}", ex_s=f"{bar.n / (time.perf_counter() - t0):.1f}")
        mean_loss = float(np.mean(jax.device_get(losses)))  # waits for the epoch's last step
        bar.close()
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds
        seen += len(order)

        t1 = time.perf_counter()
        dev_pred = predict(trainer, params, enc["validation"], spec, hp, pad_id, fallback)
        dev = metrics.compute(spec.task_type, spec.labels, enc["validation"].gold, dev_pred)
        eval_seconds += time.perf_counter() - t1
        history.append({"epoch": epoch, "train_loss": mean_loss, "train_seconds": round(epoch_seconds, 3),
                        **{k: round(v, 6) for k, v in dev.items()}})
        log.info("%s seed %d epoch %d: loss %.4f dev %s %.4f", spec.name, seed, epoch, mean_loss, spec.main_score, dev[spec.main_score])
        if dev[spec.main_score] > best_score:
            best_score, best_epoch = dev[spec.main_score], epoch
            best = jax.device_get(params)  # host copy: survives the next step's buffer donation

    t1 = time.perf_counter()
    test_pred = predict(trainer, trainer.put_replicated(best), enc["test"], spec, hp, pad_id, fallback)
    test = metrics.compute(spec.task_type, spec.labels, enc["test"].gold, test_pred)
    eval_seconds += time.perf_counter() - t1
    dev_best = {k: v for k, v in history[best_epoch - 1].items() if k not in ("epoch", "train_loss", "train_seconds")}
    return FinetuneOutput(
        dev_history=history, best_epoch=best_epoch, dev_metrics=dev_best, test_metrics=test,
        test_gold=enc["test"].gold, test_pred=test_pred, train_seconds=train_seconds, eval_seconds=eval_seconds,
        examples_per_second=seen / train_seconds if train_seconds else 0.0, train_examples_seen=seen,
        steps=total_steps, n_devices=n_dev, truncation={s: e.truncation for s, e in enc.items()},
    )
