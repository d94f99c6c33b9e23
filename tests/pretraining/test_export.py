"""Exports: the untrained floor (issue 12), PyTorch weights and byte-identical content (issue 13),
and checkpoints that carry the tokenizer files only."""

import json

import flax.serialization
import jax
import numpy as np
import pytest
from click.testing import CliRunner

from bertin_bench.cli import main as bench
from bertin_bench.exports import EXPORT_INFO
from bertin_bench.provenance import hash_dir
from pretraining import checkpoint
from pretraining.checkpoint import export_hf, export_untrained, latest_checkpoint, save_checkpoint
from pretraining.model import MaskedLM, init_params, roberta_config
from pretraining.tokenizer import TOKENIZER_FILES, load_tokenizer

from .helpers import tiny_config

try:
    import torch
except ImportError:  # the torch extra is optional
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch weights need torch (pip install 'bertin-bench[torch]')")


def _untrained_cfg(small_bpe, seed=0, *extra):
    """The tiny test model (hidden 32, vocab 1000) with a given initialisation seed."""
    return tiny_config(small_bpe, small_bpe.parent / "unused", str(small_bpe), "model.vocab_size=1000",
                       f"training.seed={seed}", *extra)


def _params(export_dir):
    return flax.serialization.msgpack_restore((export_dir / "flax_model.msgpack").read_bytes())


def _leaves(tree):
    return jax.tree_util.tree_leaves(tree)


def _files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_checkpoint_tokenizer_holds_the_tokenizer_files_only(bertin_tokenizer_dir, tmp_path):
    """BERTIN's folder also holds a model card, PROVENANCE.md, a licence and a 12-layer config.json:
    none of them belongs to a (4-layer) checkpoint."""
    clutter = {"README.md", "PROVENANCE.md", "config.json"}
    assert clutter <= {p.name for p in bertin_tokenizer_dir.iterdir()}  # the test means something
    state = {"step": np.zeros((), np.int32), "params": {"w": np.ones((2, 2), np.float32)}}
    ckpt = save_checkpoint(tmp_path / "run", 1, state, {"tokens_seen": 0}, "name: t\n", bertin_tokenizer_dir, keep_last=1)
    names = {p.name for p in (ckpt / "tokenizer").iterdir()}
    assert names <= set(TOKENIZER_FILES) and {"tokenizer.json", "vocab.json", "merges.txt"} <= names
    assert not any(n.startswith("LICENSE") for n in names)
    assert len(load_tokenizer(ckpt / "tokenizer")) == len(load_tokenizer(bertin_tokenizer_dir))
    # Its identity is the hash of exactly those files, wherever they lie.
    ident = checkpoint.tokenizer_identity(bertin_tokenizer_dir, "bertin", 50265)
    assert ident["hash"] == hash_dir(ckpt / "tokenizer") != hash_dir(bertin_tokenizer_dir)


def test_untrained_export_is_the_seeded_initialisation(small_bpe, tmp_path):
    cfg = _untrained_cfg(small_bpe, seed=0)
    out = export_untrained(cfg, tmp_path / "none-s0", pytorch=False)
    tok = load_tokenizer(small_bpe)
    fresh = init_params(MaskedLM(roberta_config(cfg.model, tok)), cfg.training.seq_len, 0)
    exported = _params(out)
    assert jax.tree_util.tree_structure(exported) == jax.tree_util.tree_structure(jax.device_get(fresh))
    for a, b in zip(_leaves(exported), _leaves(fresh)):
        np.testing.assert_array_equal(a, np.asarray(b))
    other = _params(export_untrained(_untrained_cfg(small_bpe, seed=1), tmp_path / "none-s1", pytorch=False))
    emb = lambda p: p["roberta"]["embeddings"]["word_embeddings"]["embedding"]  # noqa: E731
    assert not np.allclose(emb(exported), emb(other))

    info = json.loads((out / EXPORT_INFO).read_text())
    assert info["untrained"] is True and info["steps"] == 0 and info["tokens_seen"] == 0
    assert info["config"]["training"]["seed"] == 0 and info["config"]["model"]["hidden_size"] == 32
    assert info["tokenizer"]["vocab_size"] == 1000 and info["data"] is None
    assert info["tokenizer"]["hash"] == checkpoint.tokenizer_identity(small_bpe, "x", 1000)["hash"]

    # The same model again: a no-op (the directory is not rewritten); anything else there: refused.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert export_untrained(cfg, out, pytorch=False) == out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    with pytest.raises(FileExistsError, match="untrained model of seed 2"):
        export_untrained(_untrained_cfg(small_bpe, seed=2), out, pytorch=False)
    (tmp_path / "mine").mkdir()
    with pytest.raises(FileExistsError):
        export_untrained(cfg, tmp_path / "mine", pytorch=False)


def test_the_benchmark_loads_an_untrained_export(small_bpe, tmp_path):
    from benchmark.models import check_compatible, load_model, load_tokenizer as bench_tokenizer, resolve_model
    from benchmark.tasks import TOKEN

    out = export_untrained(_untrained_cfg(small_bpe), tmp_path / "none", pytorch=False)
    resolved = resolve_model(out)
    assert resolved.source == "local" and resolved.weights == "flax" and resolved.pretraining_tokens == 0
    assert resolved.pretraining["untrained"] is True
    tok, config = bench_tokenizer(resolved)
    check_compatible(resolved, tok, config)
    model = load_model(resolved, TOKEN, ("O", "B-PER", "I-PER"), seed=0)
    ids = tok("Hola, señora López.", return_tensors="np")
    assert model(**ids).logits.shape[-1] == 3
    assert ids.input_ids[0, 0] == tok.cls_token_id  # <s> ... </s>, as in pre-training


def test_untrained_export_needs_a_tokenizer_and_matching_vocab(small_bpe, tmp_path):
    with pytest.raises(ValueError, match="tokenizer.path"):
        export_untrained(_untrained_cfg(small_bpe, 0, "tokenizer.path=null"), tmp_path / "a")
    with pytest.raises(ValueError, match="vocab_size"):
        export_untrained(_untrained_cfg(small_bpe, 0, "model.vocab_size=2000"), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def trained_run(shards, small_bpe, tmp_path_factory):
    """A 4-step tiny run with one checkpoint (the real training loop)."""
    from pretraining.train import train

    run = tmp_path_factory.mktemp("export-run") / "run"
    train(tiny_config(shards, run, str(small_bpe), "model.vocab_size=1000", "training.max_steps=4", "data.eval_docs=0"))
    return run


def test_exports_of_one_checkpoint_are_byte_identical_but_the_info(trained_run, tmp_path):
    """The benchmark identifies a model by its content: two exports of the same checkpoint must not
    differ in any weight, config or tokenizer file. Dates and paths live in the export info only."""
    a = export_hf(trained_run, tmp_path / "a", pytorch=torch is not None)
    b = export_hf(trained_run, tmp_path / "b", pytorch=torch is not None)
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys() and {"config.json", "flax_model.msgpack", EXPORT_INFO} <= fa.keys()
    assert ("model.safetensors" in fa) == (torch is not None)
    differing = sorted(n for n in fa if fa[n] != fb[n])
    assert differing in ([], [EXPORT_INFO])
    ia, ib = json.loads(fa[EXPORT_INFO]), json.loads(fb[EXPORT_INFO])
    assert ia["key_hash"] == ib["key_hash"] and ia["steps"] == 4
    # The weights are the checkpoint's, unchanged.
    for x, y in zip(_leaves(_params(a)), _leaves(checkpoint.load_params(latest_checkpoint(trained_run)))):
        np.testing.assert_array_equal(x, y)


@needs_torch
def test_pytorch_weights_match_flax_and_fill_mask_runs(trained_run, tmp_path):
    from transformers import AutoModelForMaskedLM, FlaxAutoModelForMaskedLM, pipeline

    out = export_hf(trained_run, tmp_path / "hf")  # torch is installed: written by default
    assert (out / "model.safetensors").is_file()
    pt = AutoModelForMaskedLM.from_pretrained(out)
    assert not any(p.is_meta for p in pt.parameters())
    fx = FlaxAutoModelForMaskedLM.from_pretrained(out)
    tok = load_tokenizer(out)
    batch = tok(["El perro come <mask> en la casa.", "Hola"], padding=True, return_tensors="np")
    with torch.no_grad():
        lp = pt(input_ids=torch.tensor(batch.input_ids), attention_mask=torch.tensor(batch.attention_mask)).logits.numpy()
    lf = np.asarray(fx(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits)
    np.testing.assert_allclose(lp, lf, atol=1e-4, rtol=0)
    assert np.abs(lf).max() > 1e-2  # not a degenerate all-zero comparison
    fill = pipeline("fill-mask", model=str(out), framework="pt")
    guesses = fill("El perro come <mask> en la casa.")
    assert len(guesses) == 5 and all(0 <= g["score"] <= 1 for g in guesses)


@needs_torch
def test_pytorch_weights_added_later_by_the_cli(trained_run, tmp_path):
    """An export made without torch gets model.safetensors with `bench pretrain export --pytorch`,
    the same bytes the export itself writes."""
    with_pt = export_hf(trained_run, tmp_path / "with", pytorch=True)
    plain = export_hf(trained_run, tmp_path / "plain", pytorch=False)
    assert not (plain / "model.safetensors").exists()
    result = CliRunner().invoke(bench, ["pretrain", "export", "--pytorch", str(plain)])
    assert result.exit_code == 0, result.output
    assert (plain / "model.safetensors").read_bytes() == (with_pt / "model.safetensors").read_bytes()
    assert (plain / "config.json").read_bytes() == (with_pt / "config.json").read_bytes()


def test_export_without_torch_says_how_to_add_pytorch_weights(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "torch_available", lambda: False)
    out = tmp_path / "hf"
    result = CliRunner().invoke(bench, ["pretrain", "export", str(trained_run), str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "model.safetensors").exists() and (out / "flax_model.msgpack").is_file()
    assert "bench pretrain export --pytorch" in result.output
    # Asked for explicitly without torch: one clear line, nothing written.
    result = CliRunner().invoke(bench, ["pretrain", "export", "--pytorch", str(out)])
    assert result.exit_code == 1 and "torch" in result.output and "Traceback" not in result.output
    assert not (out / "model.safetensors").exists()
