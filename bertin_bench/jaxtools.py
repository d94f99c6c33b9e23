"""The JAX plumbing that pre-training and fine-tuning share, written once.

- :func:`decay_mask`: which parameters AdamW decays (matrices and embeddings, never biases or
  LayerNorm scales);
- :func:`warmup_linear_schedule`: linear warm-up to the peak, then linear decay;
- :class:`DataParallel`: a 1-D device mesh, replicated state and the batch sharded on its first
  axis (the global batch never depends on the device count, so the numbers do not either); on
  several hosts each process feeds only its own rows (:meth:`DataParallel.local_rows`);
- :func:`sync`: a barrier across the processes of a multi-host job (a no-op on one);
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

    def local_rows(self, global_size: int) -> slice:
        """The rows of a global batch of ``global_size`` that this process's devices hold (all of
        them on one host). Read from the sharding itself, so it is right whatever the device order;
        a process whose devices hold non-contiguous rows is refused (it could not feed one slice)."""
        if self.sharded.is_fully_addressable:
            return slice(0, global_size)
        index = self.sharded.addressable_devices_indices_map((global_size,))
        spans = sorted({(i[0].start or 0, global_size if i[0].stop is None else i[0].stop) for i in index.values()})
        if any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
            raise ValueError(f"process {jax.process_index()} holds non-contiguous rows {spans} of the batch: "
                             "order the mesh devices by process")
        return slice(spans[0][0], spans[-1][1])

    def put_batch(self, batch: dict, global_size: int | None = None) -> dict:
        """Place a batch of numpy arrays, sharded on the first axis.

        Without ``global_size`` the batch is the whole global batch (on several hosts every host
        then holds all of it and contributes its own rows). With ``global_size`` it holds only this
        process's rows, :meth:`local_rows` ``(global_size)``, and the global array is assembled from
        every process's part: nothing but the local rows is ever built on a host."""
        if self.sharded.is_fully_addressable:
            return {k: jax.device_put(v, self.sharded) for k, v in batch.items()}
        if global_size is None:
            global_size = len(next(iter(batch.values())))
            rows = self.local_rows(global_size)
            batch = {k: v[rows] for k, v in batch.items()}
        return {k: jax.make_array_from_process_local_data(self.sharded, v, (global_size,) + v.shape[1:])
                for k, v in batch.items()}

    def replicate(self, tree):
        return jax.device_put(tree, self.replicated)


def sync(name: str) -> None:
    """Wait until every process of a multi-host job reaches the barrier ``name`` (the same name on
    all of them); a no-op in a single process. It runs over the collectives, so a dead process
    fails it (after the distributed heartbeat timeout at the latest) instead of hanging it."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


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
