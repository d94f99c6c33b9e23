"""The data pipeline on real shards cut from the web sample, with BERTIN's real tokenizer."""

import gzip
import itertools
import json

import numpy as np
import pytest

from pretraining.data import (BlockStream, MaskSpec, Position, Prefetcher, iter_documents, mask_tokens,
                              max_predictions, resolve_files, tokenize, train_batches)
from pretraining.tokenizer import check_vocab, load_tokenizer

from .helpers import make_shards


@pytest.fixture(scope="module")
def tok(bertin_tokenizer_dir):
    return load_tokenizer(bertin_tokenizer_dir)


def test_resolve_files_dir_glob_and_errors(shards, tmp_path):
    files = resolve_files(shards)
    assert [f.name for f in files] == ["00000.jsonl.gz", "00001.jsonl.gz", "00002.jsonl.gz"]
    assert resolve_files(str(shards / "0000[12].jsonl.gz")) == files[1:]
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no"):
        resolve_files(tmp_path / "empty")


def test_bad_lines_name_file_and_line(tmp_path):
    bad = tmp_path / "00000.jsonl"
    bad.write_text(json.dumps({"text": "hola"}) + "\n" + '{"text": "roto\n')
    with pytest.raises(ValueError, match=r"00000\.jsonl:2: invalid JSON"):
        list(iter_documents([bad]))
    nofield = tmp_path / "00001.jsonl"
    nofield.write_text(json.dumps({"contenido": "hola"}) + "\n")
    with pytest.raises(ValueError, match=r"00001\.jsonl:1: no 'text' field"):
        list(iter_documents([nofield]))


def test_vocab_mismatch_is_a_clear_error(tok):
    check_vocab(tok, 50265)
    with pytest.raises(ValueError, match="tokenizer has 50265 tokens but model.vocab_size=1000"):
        check_vocab(tok, 1000)


def test_blocks_pack_short_documents_and_hold_out_the_eval_slice(shards, tok):
    files = resolve_files(shards)
    stream = BlockStream(files, tok, 128, eval_docs=50, shuffle_buffer_blocks=32)
    heldout = {(d.file_index, d.line) for d in itertools.islice(iter_documents(files), 50)}
    assert len(heldout) == 50
    # The held-out documents never reach the training stream.
    train_docs = iter_documents(files, skip=stream.skip)
    assert not heldout & {(d.file_index, d.line) for d in train_docs}
    eval_blocks = stream.eval_blocks(1000)
    assert eval_blocks.shape[1] == 128 and len(eval_blocks) > 5
    blocks = [b for b, _ in itertools.islice(stream.train_blocks(), 100)]
    arr = np.stack(blocks)
    assert arr.shape == (100, 128)
    # Packed RoBERTa style: no padding, and most blocks hold a document boundary (the web sample has
    # many documents shorter than a block: tweets, reviews).
    assert not (arr == tok.pad_token_id).any()
    with_boundary = ((arr == tok.eos_token_id) & (np.roll(arr, -1, axis=1) == tok.bos_token_id)).any(axis=1)
    assert with_boundary.mean() > 0.3


def test_separate_eval_files_hold_out_nothing_from_training(shards, tok, web_sample, tmp_path):
    """Runs on different samples compare on the same text: eval from data.eval_files, and then the
    whole training set is trained on."""
    files = resolve_files(shards)
    common = make_shards(web_sample, tmp_path / "heldout", n_docs=40, n_shards=1, skip=50_000)
    stream = BlockStream(files, tok, 128, eval_docs=30, shuffle_buffer_blocks=32, eval_files=resolve_files(common))
    assert stream.skip == {}
    expected = [d.text for d in itertools.islice(iter_documents(resolve_files(common)), 30)]
    assert [d.text for d in stream._heldout_docs] == expected
    own = BlockStream(files, tok, 128, eval_docs=30, shuffle_buffer_blocks=32)
    assert not np.array_equal(stream.eval_blocks(8), own.eval_blocks(8))


def test_stream_resumes_exactly_from_any_position(shards, tok):
    stream = BlockStream(resolve_files(shards), tok, 128, eval_docs=20, shuffle_buffer_blocks=16, seed=3)
    ref = list(itertools.islice(stream.train_blocks(), 60))
    for k in (5, 16, 33):  # inside a chunk, at a chunk boundary, in a later chunk
        resumed = list(itertools.islice(stream.train_blocks(ref[k - 1][1]), 60 - k))
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(ref[k:], resumed))
        assert [p for _, p in ref[k:]] == [p for _, p in resumed]


def test_epochs_wrap_reshuffled(web_sample, tmp_path, tok):
    shards = make_shards(web_sample, tmp_path / "s", n_docs=60, n_shards=2)
    stream = BlockStream(resolve_files(shards), tok, 64, eval_docs=5, shuffle_buffer_blocks=8, seed=0)
    per_epoch: dict[int, list] = {}
    for block, pos in itertools.islice(stream.train_blocks(), 2000):
        per_epoch.setdefault(pos.epoch, []).append(block)
        if pos.epoch == 2:
            break
    e0, e1 = np.stack(per_epoch[0]), np.stack(per_epoch[1])
    # Same tokens, in another order (chunks differ with the file order, so allow tail drops).
    assert abs(len(e0) - len(e1)) <= 4
    assert not np.array_equal(e0[: min(len(e0), len(e1))], e1[: min(len(e0), len(e1))])
    assert abs(np.isin(e0, e1).mean() - 1) < 0.05


def test_too_little_data_is_a_clear_error(web_sample, tmp_path, tok):
    shards = make_shards(web_sample, tmp_path / "s", n_docs=3, n_shards=1)
    stream = BlockStream(resolve_files(shards), tok, 512, eval_docs=2)
    with pytest.raises(ValueError, match="fewer than one block"):
        next(stream.train_blocks())
    with pytest.raises(ValueError, match="raise data.eval_docs"):
        BlockStream(resolve_files(shards), tok, 4096, eval_docs=1).eval_blocks(10)


def test_masking_statistics_on_real_batches(shards, tok):
    spec = MaskSpec.from_tokenizer(tok, 0.15)
    stream = BlockStream(resolve_files(shards), tok, 128, eval_docs=20, shuffle_buffer_blocks=64)
    blocks = np.stack([b for b, _ in itertools.islice(stream.train_blocks(), 256)])
    # Some padded rows too: padding must never be chosen.
    blocks[:32, 100:] = tok.pad_token_id
    out = mask_tokens(blocks, np.random.default_rng(0), spec)
    special = np.isin(blocks, spec.special_ids + (spec.pad_id,))
    chosen = out["labels"] >= 0
    assert not (chosen & special).any(), "special or padding tokens were masked"
    # Exactly round(15%) of each row's eligible tokens.
    n_elig = (~special).sum(1)
    assert np.array_equal(chosen.sum(1), np.floor(n_elig * 0.15 + 0.5))
    assert abs(chosen.sum() / (~special).sum() - 0.15) < 0.005
    # 80/10/10 (binomial std of the fractions ~0.004 for ~4,800 predictions: 5 sigma tolerances).
    orig, new = blocks[chosen], out["input_ids"][chosen]
    frac_mask = (new == tok.mask_token_id).mean()
    frac_kept = (new == orig).mean()
    frac_random = 1 - frac_mask - frac_kept
    assert abs(frac_mask - 0.8) < 0.03 and abs(frac_kept - 0.1) < 0.025 and abs(frac_random - 0.1) < 0.025
    # Unchosen tokens are untouched; labels hold the original tokens.
    assert np.array_equal(out["input_ids"][~chosen], blocks[~chosen])
    assert np.array_equal(out["labels"][chosen], orig)
    assert np.array_equal(out["attention_mask"], (blocks != tok.pad_token_id).astype(np.int32))
    # The gathered layout describes the same predictions.
    K = max_predictions(128, 0.15)
    assert out["mlm_positions"].shape == (256, K)
    w = out["mlm_weights"].astype(bool)
    rows = np.nonzero(w)[0]
    assert np.array_equal(out["labels"][rows, out["mlm_positions"][w]], out["mlm_ids"][w])
    assert w.sum() == chosen.sum()


def test_batches_are_deterministic_per_step_and_prefetch_preserves_them(shards, tok):
    spec = MaskSpec.from_tokenizer(tok)
    stream = BlockStream(resolve_files(shards), tok, 128, eval_docs=20, shuffle_buffer_blocks=16)
    ref = list(itertools.islice(train_batches(stream, 4, spec, seed=1), 6))
    step, _, pos = ref[2]
    resumed = list(itertools.islice(train_batches(stream, 4, spec, seed=1, start_step=step + 1, start=pos), 3))
    for (s1, b1, p1), (s2, b2, p2) in zip(ref[3:], resumed):
        assert s1 == s2 and p1 == p2 and all(np.array_equal(b1[k], b2[k]) for k in b1)
    pre = Prefetcher(train_batches(stream, 4, spec, seed=1), depth=2)
    got = list(itertools.islice(pre, 6))
    pre.close()
    assert all(np.array_equal(a[1]["input_ids"], b[1]["input_ids"]) for a, b in zip(ref, got))


def test_prefetcher_reraises_errors():
    def gen():
        yield 1
        raise ValueError("boom at shard 3")

    pre = Prefetcher(gen())
    assert next(pre) == 1
    with pytest.raises(ValueError, match="boom"):
        next(pre)


def test_tokenize_wraps_documents_like_roberta(tok):
    ids = tokenize(tok, ["Hola mundo.", "Adiós."])
    assert ids[0][0] == tok.bos_token_id and ids[0][-1] == tok.eos_token_id
    assert ids[0] == [tok.bos_token_id] + tok("Hola mundo.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
