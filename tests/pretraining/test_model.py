"""The model and the step: masked-positions-only logits, HF parameter layout, weight-decay mask,
gradient accumulation, and data parallelism over 2 (emulated) devices against 1."""

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretraining.config import load_config
from pretraining.data import BlockStream, MaskSpec, mask_tokens, resolve_files
from pretraining.model import MaskedLM, batch_loss_sums, init_params, roberta_config
from pretraining.tokenizer import load_tokenizer
from pretraining.train import decay_mask, make_optimizer, make_train_step


REPO = Path(__file__).resolve().parents[2]


def _setup(tok_dir, shards):
    tok = load_tokenizer(tok_dir)
    stream = BlockStream(resolve_files(shards), tok, 64, eval_docs=10, shuffle_buffer_blocks=16)
    blocks = np.stack([b for b, _ in itertools.islice(stream.train_blocks(), 8)])
    batch = mask_tokens(blocks, np.random.default_rng(0), MaskSpec.from_tokenizer(tok))
    cfg = load_config("tiny", [f"model.vocab_size={len(tok)}", "model.hidden_size=32", "model.intermediate_size=64", "training.seq_len=64",
                               "training.batch_size=8", "model.hidden_dropout_prob=0",
                               "model.attention_probs_dropout_prob=0", "data.train_files=x"])
    module = MaskedLM(roberta_config(cfg.model, tok))
    params = init_params(module, 64, 0)
    return tok, cfg, module, params, batch


@pytest.fixture(scope="module")
def setup(bertin_tokenizer_dir, shards):
    """BERTIN's real 50k tokenizer: the case the masked-positions output layer exists for."""
    return _setup(bertin_tokenizer_dir, shards)


@pytest.fixture(scope="module")
def small_setup(small_bpe, shards):
    return _setup(small_bpe, shards)


def test_masked_positions_loss_equals_full_logits_loss(setup):
    _, _, module, params, batch = setup
    full = batch_loss_sums(module, params, batch, masked_only=False)
    gathered = batch_loss_sums(module, params, batch, masked_only=True)
    assert float(full[1]) == float(gathered[1]) > 50  # same number of predictions
    np.testing.assert_allclose(float(full[0]), float(gathered[0]), rtol=1e-5)
    assert float(full[2]) == float(gathered[2])
    # And the gradients agree too.
    g_full = jax.jit(jax.grad(lambda p: batch_loss_sums(module, p, batch, masked_only=False)[0]))(params)
    g_gath = jax.jit(jax.grad(lambda p: batch_loss_sums(module, p, batch, masked_only=True)[0]))(params)
    for a, b in zip(jax.tree_util.tree_leaves(g_full), jax.tree_util.tree_leaves(g_gath)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_parameters_are_hf_flax_roberta_for_masked_lm(setup):
    from transformers import FlaxRobertaForMaskedLM

    tok, cfg, module, params, batch = setup
    hf = FlaxRobertaForMaskedLM(roberta_config(cfg.model, tok), seed=0)
    shapes = lambda t: jax.tree_util.tree_map(lambda x: x.shape, t)  # noqa: E731
    assert shapes(hf.params) == shapes(params)
    # Our full-logits output equals transformers' forward pass with our parameters.
    ours = module.apply({"params": params}, batch["input_ids"], batch["attention_mask"])
    theirs = hf(batch["input_ids"], attention_mask=batch["attention_mask"], params=params).logits
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_no_weight_decay_on_biases_and_layernorm(setup):
    _, _, _, params, _ = setup
    flat = {"/".join(k.key for k in path): v for path, v in jax.tree_util.tree_leaves_with_path(decay_mask(params))}
    assert flat["roberta/embeddings/word_embeddings/embedding"] is True
    assert flat["roberta/encoder/layer/0/attention/self/query/kernel"] is True
    assert flat["roberta/encoder/layer/0/attention/self/query/bias"] is False
    assert flat["roberta/embeddings/LayerNorm/scale"] is False
    assert flat["lm_head/layer_norm/scale"] is False and flat["lm_head/bias"] is False


def test_gradient_accumulation_equals_one_big_batch(small_setup):
    _, cfg, module, params, batch = small_setup
    tx = make_optimizer(cfg)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(0)}
    one = jax.jit(make_train_step(module, tx, masked_only=True, grad_accum=1))
    four = jax.jit(make_train_step(module, tx, masked_only=True, grad_accum=4))
    s1, m1 = one(state, batch)
    s4, m4 = four(state, batch)
    np.testing.assert_allclose(float(m1["loss"]), float(m4["loss"]), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(s1["params"]), jax.tree_util.tree_leaves(s4["params"])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


_DP_SCRIPT = textwrap.dedent("""
    import json, sys, itertools
    import jax, jax.numpy as jnp, numpy as np
    from pretraining.config import load_config
    from pretraining.data import BlockStream, MaskSpec, resolve_files, train_batches
    from pretraining.model import MaskedLM, init_params, roberta_config
    from pretraining.tokenizer import load_tokenizer
    from pretraining.train import DataParallel, make_optimizer, make_train_step
    tok_dir, shards = sys.argv[1], sys.argv[2]
    tok = load_tokenizer(tok_dir)
    cfg = load_config("tiny", [f"model.vocab_size={len(tok)}", "model.hidden_size=32", "model.intermediate_size=64",
                               "training.seq_len=64", "training.batch_size=8", "data.train_files=x",
                               "schedule.warmup_steps=1"])
    stream = BlockStream(resolve_files(shards), tok, 64, eval_docs=10, shuffle_buffer_blocks=16)
    module = MaskedLM(roberta_config(cfg.model, tok))
    tx = make_optimizer(cfg)
    params = init_params(module, 64, 0)
    results = {}
    for devices in (jax.devices()[:1], jax.devices()):
        dp = DataParallel(8, devices=devices)
        state = dp.replicate({"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
                              "rng": jax.random.PRNGKey(0)})
        step = jax.jit(make_train_step(module, tx, masked_only=True, grad_accum=1),
                       out_shardings=(dp.replicated, dp.replicated))
        losses = []
        for _, batch, _ in itertools.islice(train_batches(stream, 8, MaskSpec.from_tokenizer(tok), seed=0), 3):
            b = dp.put_batch(batch)
            state, m = step(state, b)
            losses.append(float(m["loss"]))
        results[len(devices)] = {
            "batch_devices": len(b["input_ids"].sharding.device_set), "losses": losses,
            "checksum": float(sum(jnp.abs(x).sum() for x in jax.tree_util.tree_leaves(state["params"])))}
    print(json.dumps(results))
""")


@pytest.mark.slow
def test_data_parallel_two_devices_matches_one(small_bpe, shards):
    """Real data parallelism in a subprocess with 2 emulated CPU devices (XLA flag), against a
    1-device mesh in the same process: same global batch, same loss."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run([sys.executable, "-c", _DP_SCRIPT, str(small_bpe), str(shards)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    one, two = res["1"], res["2"]
    assert (one["batch_devices"], two["batch_devices"]) == (1, 2)
    # Only the order of the float reductions differs: tolerance 1e-5 relative on the loss, 1e-4 on
    # the parameters' L1 checksum after 3 AdamW updates.
    np.testing.assert_allclose(one["losses"], two["losses"], rtol=1e-5)
    np.testing.assert_allclose(one["checksum"], two["checksum"], rtol=1e-4)
