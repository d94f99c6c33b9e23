"""Intrinsic evaluation of an exported model: masked-LM loss and accuracy per document, and per
domain (source).

A sampling strategy changes *which* text a model learns from, so its effect shows first in how well
the model predicts each kind of text. To compare models, every model must predict exactly the same
tokens: the masks here depend only on the tokenizer, the text and ``seed``, never on the model, on
the other documents or on how the documents are batched.

- Each document is tokenized alone with ``<s> ... </s>`` (:func:`pretraining.data.tokenize`, the
  training recipe) and cut into up to ``max_blocks_per_doc`` blocks of ``seq_len`` tokens
  (:func:`pretraining.data.cut_blocks`); the last block is padded instead of dropped, so a
  document shorter than a block (a tweet) is scored too.
- A document's blocks are masked by :func:`pretraining.data.mask_tokens` (the training rule:
  round(15%) of the non-special tokens, 80/10/10) with a generator seeded by ``(seed, hash of the
  text)``.
- The output layer runs at the masked positions only (:class:`pretraining.model.MaskedLM`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pretraining.data import MaskSpec, cut_blocks, mask_tokens, tokenize

# Columns of mlm_document_stats' result.
LOSS, PREDICTED, CORRECT = 0, 1, 2


def _text_seed(text: str) -> int:
    """A stable integer of the text (not Python's salted hash), so a document's masks follow it."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def masked_documents(tokenizer, texts: Sequence[str], *, seq_len: int = 128, max_blocks_per_doc: int = 4,
                     seed: int = 0, mlm_probability: float = 0.15) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The masked blocks of every document, as one batch of rows (``mask_tokens``' arrays), and the
    document index of each row."""
    if seq_len < 2 or max_blocks_per_doc < 1:
        raise ValueError(f"seq_len must be >= 2 and max_blocks_per_doc >= 1 (got {seq_len}, {max_blocks_per_doc})")
    spec = MaskSpec.from_tokenizer(tokenizer, mlm_probability)
    rows, owner = [], []
    for i, (text, ids) in enumerate(zip(texts, tokenize(tokenizer, list(texts)))):
        ids = ids[: seq_len * max_blocks_per_doc]
        blocks = cut_blocks([ids, [spec.pad_id] * (-len(ids) % seq_len)], seq_len)
        rows.append(mask_tokens(blocks, np.random.default_rng([seed, _text_seed(text)]), spec))
        owner.append(np.full(len(blocks), i))
    if not rows:
        raise ValueError("no documents to evaluate")
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}, np.concatenate(owner)


def load_masked_lm(model_dir: str | Path):
    """(module, params, tokenizer) of a Hugging Face RoBERTa directory with Flax weights (our
    exports, or any ``FlaxRobertaForMaskedLM``)."""
    import flax.serialization
    from transformers import RobertaConfig

    from pretraining.model import MaskedLM
    from pretraining.tokenizer import load_tokenizer

    model_dir = Path(model_dir)
    weights = model_dir / "flax_model.msgpack"
    if not weights.is_file() or not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a model export (no config.json or flax_model.msgpack): "
                                "export a checkpoint with `bench pretrain export`")
    config = RobertaConfig.from_pretrained(str(model_dir))
    if config.model_type != "roberta":
        raise ValueError(f"{model_dir}: a {config.model_type!r} model; the MLM evaluation reads RoBERTa models")
    params = flax.serialization.msgpack_restore(weights.read_bytes())
    return MaskedLM(config), params, load_tokenizer(model_dir)


def mlm_document_stats(model_dir: str | Path, texts: Sequence[str], *, seq_len: int = 128, max_blocks_per_doc: int = 4,
                       seed: int = 0, mlm_probability: float = 0.15, batch_size: int = 32,
                       return_tokens: bool = False):
    """Per document ``[summed masked-token loss (nats), predicted tokens, correctly predicted
    tokens]``, an ``(n_docs, 3)`` float64 array (columns ``LOSS``, ``PREDICTED``, ``CORRECT``).
    The same ``texts``, tokenizer, ``seq_len``, ``max_blocks_per_doc``, ``seed`` and
    ``mlm_probability`` give every model the same masks; ``batch_size`` only changes speed.
    ``return_tokens``: also the scored tokens per document (``(stats, tokens)``)."""
    import jax

    from bertin_bench.jaxtools import masked_loss_sums

    module, params, tok = load_masked_lm(model_dir)
    if seq_len + 2 > module.config.max_position_embeddings:  # JAX would clamp the positions silently
        raise ValueError(f"seq_len={seq_len} needs max_position_embeddings >= {seq_len + 2}; "
                         f"{model_dir} has {module.config.max_position_embeddings}")
    texts = list(texts)
    rows, owner = masked_documents(tok, texts, seq_len=seq_len, max_blocks_per_doc=max_blocks_per_doc, seed=seed,
                                   mlm_probability=mlm_probability)

    @jax.jit
    def row_sums(params, batch):
        logits = module.apply({"params": params}, batch["input_ids"], batch["attention_mask"], batch["mlm_positions"])
        return jax.vmap(masked_loss_sums)(logits, batch["mlm_ids"], batch["mlm_weights"])

    keys = ("input_ids", "attention_mask", "mlm_positions", "mlm_ids", "mlm_weights")
    per_row = np.zeros((len(owner), 3))
    for start in range(0, len(owner), batch_size):
        batch = {k: rows[k][start:start + batch_size] for k in keys}
        n = len(batch["input_ids"])
        if n < batch_size:  # one compiled shape: fill with copies of a row that count for nothing
            fill = np.arange(batch_size) % n
            batch = {k: v[fill] for k, v in batch.items()}
            batch["mlm_weights"] = np.where(np.arange(batch_size)[:, None] < n, batch["mlm_weights"], 0.0)
        sums = jax.device_get(row_sums(params, batch))
        per_row[start:start + n] = np.stack(sums, axis=1)[:n]
    stats = np.zeros((len(texts), 3))
    np.add.at(stats, owner, per_row)
    tokens = np.zeros(len(texts), dtype=np.int64)
    np.add.at(tokens, owner, rows["attention_mask"].sum(axis=1))
    return (stats, tokens) if return_tokens else stats


@dataclass(frozen=True)
class DomainStats:
    """The MLM loss and accuracy of one model on the documents of one source."""

    source: str
    documents: int
    tokens: int  # tokens in the scored blocks (<s> and </s> included, padding not)
    predicted: int  # masked tokens predicted
    loss: float  # mean loss per predicted token (nats)
    accuracy: float
    doc_stats: np.ndarray  # (documents, 3): mlm_document_stats' rows of these documents


def mlm_stats_by_source(model_dir: str | Path, records: Iterable[dict], source_key: str = "source",
                        text_key: str = "text", **kwargs) -> dict[str, DomainStats]:
    """:func:`mlm_document_stats` of ``records`` (dicts with a text and a source), summed per
    source; sources in sorted order. ``kwargs`` are mlm_document_stats' options."""
    records = list(records)
    missing = [i for i, r in enumerate(records) if text_key not in r]
    if missing:
        raise KeyError(f"record {missing[0]} has no {text_key!r} field")
    sources = np.array([str(r.get(source_key) or "unknown") for r in records])
    stats, tokens = mlm_document_stats(model_dir, [r[text_key] for r in records], return_tokens=True, **kwargs)
    out = {}
    for source in sorted(set(sources)):
        sel = sources == source
        loss, predicted, correct = stats[sel].sum(axis=0)
        out[source] = DomainStats(source, int(sel.sum()), int(tokens[sel].sum()), int(predicted),
                                  float(loss / max(predicted, 1.0)), float(correct / max(predicted, 1.0)), stats[sel])
    return out

