"""The JAX plumbing shared by pre-training and fine-tuning (bertin_bench.jaxtools), tested directly:
the schedule's values at its corners, the decay mask on real Hugging Face parameter trees, the
masked cross-entropy against a hand computation, and the batch sharding over 2 emulated devices."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from bertin_bench.jaxtools import DataParallel, decay_mask, masked_loss_sums, masked_mean_loss, warmup_linear_schedule

REPO = Path(__file__).resolve().parents[1]


def test_schedule_warms_up_then_decays_linearly():
    lr = warmup_linear_schedule(1.0, total_steps=10, warmup_steps=4, end=0.1)
    values = {s: float(lr(s)) for s in (0, 2, 4, 7, 10, 20)}
    assert values[0] == 0.0 and values[2] == pytest.approx(0.5)
    assert values[4] == pytest.approx(1.0)  # the peak at the end of warm-up
    assert values[7] == pytest.approx(1.0 - 0.9 * 3 / 6)  # halfway through the decay
    assert values[10] == pytest.approx(0.1) and values[20] == pytest.approx(0.1)  # end, and held after


def test_schedule_without_warmup_starts_at_the_peak():
    lr = warmup_linear_schedule(3e-4, total_steps=100, warmup_steps=0)
    assert float(lr(0)) == pytest.approx(3e-4) and float(lr(50)) == pytest.approx(1.5e-4)
    assert float(lr(100)) == 0.0


def _tiny_hf(cls_name: str):
    import transformers

    config = transformers.RobertaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=32, max_position_embeddings=40, num_labels=3)
    return getattr(transformers, cls_name)(config, seed=0).params


@pytest.mark.parametrize("cls_name", ["FlaxRobertaForMaskedLM", "FlaxRobertaForTokenClassification",
                                      "FlaxRobertaForSequenceClassification"])
def test_decay_mask_excludes_biases_and_layernorm(cls_name):
    params = _tiny_hf(cls_name)
    flat = {"/".join(str(k.key) for k in path): v
            for path, v in jax.tree_util.tree_leaves_with_path(decay_mask(params))}
    decayed = {k for k, v in flat.items() if v}
    assert decayed, flat
    # Every matrix and embedding table is decayed; no bias and no LayerNorm parameter is.
    assert decayed == {k for k in flat if k.endswith(("/kernel", "/embedding"))}
    assert not any(k.endswith("bias") or "layernorm" in k.lower() or "layer_norm" in k.lower() for k in decayed)
    assert any("LayerNorm" in k for k in flat) and any(k.endswith("bias") for k in flat)


def test_masked_cross_entropy_equals_a_hand_computation():
    logits = np.array([[[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]],
                       [[-1.0, 3.0, 0.0], [1.0, 1.0, 1.0]]], dtype=np.float32)
    targets = np.array([[0, 2], [1, -100]])  # -100: not scored
    weights = np.array([[1.0, 1.0], [1.0, 0.0]], dtype=np.float32)

    def nll(row, target):
        return -(row[target] - math.log(sum(math.exp(x) for x in row)))

    expected = nll(logits[0, 0], 0) + nll(logits[0, 1], 2) + nll(logits[1, 0], 1)
    total, weight, correct = masked_loss_sums(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(weights))
    assert float(total) == pytest.approx(expected, rel=1e-6)
    assert float(weight) == 3.0
    assert float(correct) == 3.0  # argmax is right at all three scored positions
    assert float(masked_mean_loss(logits, targets, weights)) == pytest.approx(expected / 3, rel=1e-6)
    # bf16 logits: the softmax still runs in float32.
    bf16 = masked_loss_sums(jnp.asarray(logits, jnp.bfloat16), jnp.asarray(targets), jnp.asarray(weights))[0]
    assert bf16.dtype == jnp.float32 and float(bf16) == pytest.approx(expected, rel=2e-2)
    # No scored position: a loss of 0, not a division by zero.
    assert float(masked_mean_loss(logits, targets, np.zeros_like(weights))) == 0.0


def test_batch_put_on_one_device_keeps_the_batch_whole():
    dp = DataParallel(jax.devices()[:1])
    batch = {"input_ids": np.arange(12, dtype=np.int32).reshape(4, 3)}
    placed = dp.put_batch(batch)["input_ids"]
    assert placed.sharding.spec == P("data") and placed.shape == (4, 3)
    np.testing.assert_array_equal(np.asarray(placed), batch["input_ids"])
    state = dp.replicate({"w": np.ones(3)})
    assert state["w"].sharding.spec == P()


def test_batch_size_the_devices_cannot_split_names_the_setting():
    dp = DataParallel(jax.devices()[:1])
    dp.check_divisible(7, "batch_size")  # one device divides anything
    with pytest.raises(ValueError, match=r"training\.batch_size=3 must be divisible by the 2 devices"):
        _two(dp).check_divisible(3, "training.batch_size")


def _two(dp: DataParallel) -> DataParallel:
    """The divisibility rule only depends on the device count: a mesh object that reports 2."""
    fake = DataParallel.__new__(DataParallel)
    fake.devices = list(dp.devices) * 2
    return fake


_SHARD_SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np
    from bertin_bench.jaxtools import DataParallel
    dp = DataParallel()
    x = np.arange(8 * 3, dtype=np.int32).reshape(8, 3)
    placed = dp.put_batch({"x": x})["x"]
    shards = sorted((s.index[0].start or 0, np.asarray(s.data).tolist()) for s in placed.addressable_shards)
    print(json.dumps({"devices": dp.n_devices, "shards": shards, "whole": np.asarray(placed).tolist()}))
""")


@pytest.mark.slow
def test_batch_put_shards_along_the_data_axis_over_two_devices():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run([sys.executable, "-c", _SHARD_SCRIPT], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    x = np.arange(8 * 3).reshape(8, 3)
    assert res["devices"] == 2
    # Each device holds a contiguous half of the rows (the first axis), whole rows each.
    assert res["shards"] == [[0, x[:4].tolist()], [4, x[4:].tolist()]]
    assert res["whole"] == x.tolist()
