"""Per-document and per-domain MLM evaluation (issue 12, section 4): the same masks for every
model, the same loss as the plain full-logits computation, and numbers that tell a trained model
from the untrained floor on real held-out text."""

import gzip
import itertools
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from bertin_bench.cli import main as bench
from pretraining.checkpoint import export_hf, export_untrained
from pretraining.evaluate import (CORRECT, LOSS, PREDICTED, load_masked_lm, masked_documents, mlm_document_stats,
                                  mlm_stats_by_source)
from pretraining.model import batch_loss_sums

from .helpers import tiny_config, tiny_overrides

SEQ, BLOCKS = 64, 2


@pytest.fixture(scope="module")
def held_out(web_sample):
    """300 real documents of the web sample that the shards fixture (its first 3,000) never holds."""
    with gzip.open(web_sample, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in itertools.islice(f, 5000, 5300)]


@pytest.fixture(scope="module")
def models(shards, small_bpe, tmp_path_factory):
    """(trained, untrained) exports of the same tiny model and seed: 40 steps through `bench
    pretrain`, and the initialisation that run started from."""
    root = tmp_path_factory.mktemp("eval-models")
    args = tiny_overrides(shards, root / "run", str(small_bpe), "model.vocab_size=1000", "training.max_steps=40",
                          "checkpointing.every_steps=40", "logging.eval_every=40")
    result = CliRunner().invoke(bench, ["pretrain", "--config", "tiny", *args])
    assert result.exit_code == 0, result.output
    trained = export_hf(root / "run", root / "trained", pytorch=False)
    untrained = export_untrained(tiny_config(shards, root / "run", str(small_bpe), "model.vocab_size=1000"),
                                 root / "untrained", pytorch=False)
    return trained, untrained


def _stats(model_dir, texts, **kw):
    return mlm_document_stats(model_dir, texts, seq_len=SEQ, max_blocks_per_doc=BLOCKS, **kw)


def test_every_model_sees_the_same_masks_whatever_the_batch(models, held_out):
    trained, untrained = models
    texts = [r["text"] for r in held_out[:60]]
    (a, own_a), (b, own_b) = (masked_documents(load_masked_lm(m)[2], texts, seq_len=SEQ, max_blocks_per_doc=BLOCKS)
                              for m in models)
    for k in ("input_ids", "mlm_positions", "mlm_ids", "mlm_weights", "labels"):
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(own_a, own_b)
    # A document's masks are its own: alone, or among others, it gets the same positions and targets.
    alone, _ = masked_documents(load_masked_lm(trained)[2], [texts[7]], seq_len=SEQ, max_blocks_per_doc=BLOCKS)
    for k in ("mlm_positions", "mlm_ids", "mlm_weights"):
        np.testing.assert_array_equal(alone[k], a[k][own_a == 7])
    # Another seed: other masks.
    c, _ = masked_documents(load_masked_lm(trained)[2], texts, seq_len=SEQ, max_blocks_per_doc=BLOCKS, seed=1)
    assert not np.array_equal(a["mlm_positions"], c["mlm_positions"])
    # Short documents (most tweets) are scored too: every document predicts something, ~15% of it.
    stats = _stats(trained, texts)
    assert (stats[:, PREDICTED] > 0).all()
    assert 0.10 < stats[:, PREDICTED].sum() / a["attention_mask"].sum() < 0.16
    # Order and batch size change nothing but speed.
    order = np.random.default_rng(0).permutation(len(texts))
    shuffled = _stats(trained, [texts[i] for i in order], batch_size=7)
    np.testing.assert_allclose(shuffled, stats[order], rtol=1e-5, atol=1e-4)


def test_loss_equals_the_full_logits_computation(models, held_out):
    trained, _ = models
    texts = [r["text"] for r in held_out[:12]]
    module, params, tok = load_masked_lm(trained)
    rows, _ = masked_documents(tok, texts, seq_len=SEQ, max_blocks_per_doc=BLOCKS)
    # The plain way: logits at every position, labels -100 outside the masked ones, one batch.
    loss, predicted, correct = (float(x) for x in batch_loss_sums(module, params, rows, masked_only=False))
    stats = _stats(trained, texts, batch_size=4)
    assert stats[:, PREDICTED].sum() == predicted and stats[:, CORRECT].sum() == correct
    assert stats[:, LOSS].sum() == pytest.approx(loss, rel=1e-4)


def test_the_untrained_floor_scores_about_ln_vocab(models, held_out):
    _, untrained = models
    stats = _stats(untrained, [r["text"] for r in held_out[:100]])
    mean = stats[:, LOSS].sum() / stats[:, PREDICTED].sum()
    assert mean == pytest.approx(math.log(1000), abs=0.05)


def test_by_source_a_trained_model_beats_the_floor(models, held_out):
    trained, untrained = models
    by = {name: mlm_stats_by_source(m, held_out, seq_len=SEQ, max_blocks_per_doc=BLOCKS)
          for name, m in (("trained", trained), ("untrained", untrained))}
    sources = {r["source"] for r in held_out}
    assert set(by["trained"]) == sources == set(by["untrained"])
    t, u = by["trained"], by["untrained"]
    assert sum(d.documents for d in t.values()) == len(held_out)
    for source, d in t.items():
        assert d.doc_stats.shape == (d.documents, 3) and d.predicted == d.doc_stats[:, PREDICTED].sum()
        assert d.loss == pytest.approx(d.doc_stats[:, LOSS].sum() / d.predicted)
        assert d.tokens > d.predicted > 0
        assert u[source].predicted == d.predicted and u[source].tokens == d.tokens  # same tokens, same masks
    big = [s for s in sources if t[s].documents >= 30]
    assert big, {s: t[s].documents for s in sources}
    for s in big:
        assert t[s].loss < u[s].loss - 0.3, (s, t[s].loss, u[s].loss)
        assert t[s].accuracy > u[s].accuracy
