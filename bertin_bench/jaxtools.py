"""The JAX plumbing that pre-training and fine-tuning share, written once.

- :func:`decay_mask`: which parameters AdamW decays (matrices and embeddings, never biases or
  LayerNorm scales);
- :func:`warmup_linear_schedule`: linear warm-up to the peak, then linear decay;
- :class:`DataParallel`: a 1-D device mesh, replicated state and the batch sharded on its first
  axis (the global batch never depends on the device count, so the numbers do not either);
- :func:`masked_loss_sums`: the cross-entropy of weighted positions, as sums so that callers can
  average over a whole (accumulated, sharded) batch.

JAX is imported here at module level: import this module only where JAX is needed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# Flax names a dense layer's matrix ``kernel`` and an embedding table ``embedding``; biases are
# ``bias`` and LayerNorm parameters ``scale``/``bias``, so the leaf name alone decides.
DECAYED_LEAVES = ("kernel", "embedding")


def decay_mask(params) -> Any:
    """A tree of booleans like ``params``: weight decay on matrices and embeddings only, never on
    biases or LayerNorm scales (BERT's rule; decaying a scale towards 0 only hurts)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: _leaf_name(path) in DECAYED_LEAVES, params)


def _leaf_name(path) -> str:
    last = path[-1]
    return str(getattr(last, "key", getattr(last, "name", last)))


def warmup_linear_schedule(peak: float, total_steps: int, warmup_steps: int, end: float = 0.0) -> optax.Schedule:
    """0 -> ``peak`` linearly over ``warmup_steps``, then ``peak`` -> ``end`` linearly until
    ``total_steps`` (and ``end`` after). Without warm-up the schedule starts at the peak."""
    decay = optax.linear_schedule(peak, end, max(1, total_steps - warmup_steps))
    if warmup_steps <= 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup_steps), decay], [warmup_steps])


class DataParallel:
    """A 1-D mesh (axis ``data``) over ``devices`` (default: all of them, every host's); state is
    replicated and a batch is split along its first axis, so XLA adds the gradient all-reduce."""

    def __init__(self, devices: list | None = None):
        self.devices = list(jax.devices() if devices is None else devices)
        self.mesh = Mesh(np.array(self.devices), ("data",))
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P("data"))

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    def check_divisible(self, size: int, name: str) -> None:
        """Refuse a batch the devices cannot split evenly (``name`` is the setting to change)."""
        if size % self.n_devices:
            raise ValueError(f"{name}={size} must be divisible by the {self.n_devices} devices")

    def put_batch(self, batch: dict) -> dict:
        """Place a global host batch of numpy arrays, sharded on the first axis. When the mesh spans
        several hosts, every host holds the same global batch and contributes its own rows."""
        if self.sharded.is_fully_addressable:
            return {k: jax.device_put(v, self.sharded) for k, v in batch.items()}
        i, n = jax.process_index(), jax.process_count()
        out = {}
        for k, v in batch.items():
            rows = len(v) // n
            out[k] = jax.make_array_from_process_local_data(self.sharded, v[i * rows:(i + 1) * rows], v.shape)
        return out

    def replicate(self, tree):
        return jax.device_put(tree, self.replicated)


def masked_loss_sums(logits: jax.Array, targets: jax.Array, weights: jax.Array):
    """(sum of cross-entropy, sum of weights, number correct) over the weighted positions.

    The softmax runs in float32 whatever the compute dtype. Targets below 0 (the usual -100 for
    "not scored") are read as class 0 so the gather stays in range: give them weight 0."""
    targets = jnp.maximum(targets, 0)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return (nll * weights).sum(), weights.sum(), (correct * weights).sum()


def masked_mean_loss(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
    """The weighted mean cross-entropy (0 when no position is weighted)."""
    total, weight, _ = masked_loss_sums(logits, targets, weights)
    return total / jnp.maximum(weight, 1.0)
