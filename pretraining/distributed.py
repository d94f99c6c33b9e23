"""Joining a multi-process (multi-host) JAX job: detection, start-up, topology, failures.

One process per host (or per GPU) runs the same ``bench pretrain`` command; they meet through
``jax.distributed.initialize`` at a coordinator (process 0's host). How a process learns its place:

- explicit: ``--coordinator HOST:PORT --num-processes N --process-id I`` (or the variables
  ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``);
- Slurm: inside an ``srun`` step with several tasks (``SLURM_NTASKS`` > 1 and
  ``SLURM_STEP_NODELIST``), JAX reads the rest (``SLURM_PROCID``, the first node of the step as
  the coordinator);
- Open MPI: ``mpirun -n N`` (``OMPI_COMM_WORLD_SIZE`` > 1);
- ``--coordinator auto``: JAX's own cluster detection (a Cloud TPU pod slice, Kubernetes, mpi4py).

Anything else is a single process and nothing is initialized. On the CPU backend the processes
talk through gloo (JAX's CPU collectives), which is what the tests run on one machine.

A process that dies must fail the job, not hang it: gloo reports a closed connection at the next
collective, and the coordination service's heartbeat (``heartbeat_timeout`` seconds) catches a host
that vanished without closing its sockets. :func:`peer_failures` turns either into
:class:`PeerLost`, one clear line naming the step and the checkpoint to resume from.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

log = logging.getLogger(__name__)

# JAX's defaults are 300 s to meet and 100 s of missed heartbeats before a process counts as dead.
# 60 s is long enough for a busy host's pauses (a checkpoint write, a slow compile), short enough
# that a lost node ends the job within a minute instead of idling a whole allocation.
INIT_TIMEOUT_S = 300
HEARTBEAT_TIMEOUT_S = 60

# Signs, in an error's message, that another process is gone (gloo, the coordination service, MPI).
_LOST_PEER = ("gloo", "connection closed", "connection reset", "broken pipe", "heartbeat", "unavailable",
              "deadline_exceeded", "coordination service", "barrier", "mpi_", "socket closed")


class PeerLost(ConnectionError):
    """Another process of the job died or became unreachable (a ConnectionError, so the CLI
    reports it as one line)."""


@dataclass(frozen=True)
class ClusterSpec:
    """How this process joins the job; ``None`` fields are left to JAX's cluster detection."""

    source: str  # "explicit", "environment", "slurm", "openmpi" or "auto"
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None


def detect(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
           env: Mapping[str, str] | None = None) -> ClusterSpec | None:
    """The multi-process job this process belongs to, or ``None`` for a single process."""
    env = os.environ if env is None else env
    if coordinator == "auto":
        return ClusterSpec("auto")
    if coordinator or num_processes is not None or process_id is not None:
        missing = [name for name, v in (("--coordinator", coordinator), ("--num-processes", num_processes),
                                        ("--process-id", process_id)) if v is None]
        if missing:
            raise ValueError(f"a multi-process run needs --coordinator HOST:PORT, --num-processes N and "
                             f"--process-id I together (missing {', '.join(missing)}; or --coordinator auto)")
        return _checked(ClusterSpec("explicit", coordinator, int(num_processes), int(process_id)))
    if env.get("JAX_COORDINATOR_ADDRESS"):
        n, i = env.get("JAX_NUM_PROCESSES"), env.get("JAX_PROCESS_ID")
        return _checked(ClusterSpec("environment", env["JAX_COORDINATOR_ADDRESS"],
                                    int(n) if n else None, int(i) if i else None))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_NODELIST" in env:
        return ClusterSpec("slurm")
    if int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return ClusterSpec("openmpi")
    return None


def _checked(spec: ClusterSpec) -> ClusterSpec:
    if spec.coordinator and ":" not in spec.coordinator:
        raise ValueError(f"coordinator {spec.coordinator!r} must be HOST:PORT (e.g. 10.0.0.1:12355)")
    if spec.num_processes is not None and spec.process_id is not None and not 0 <= spec.process_id < spec.num_processes:
        raise ValueError(f"process id {spec.process_id} must be in 0..{spec.num_processes - 1}")
    return spec


def is_initialized() -> bool:
    import jax

    return bool(getattr(jax.distributed, "is_initialized", lambda: False)())


def initialize(spec: ClusterSpec | None, *, init_timeout: int = INIT_TIMEOUT_S,
               heartbeat_timeout: int = HEARTBEAT_TIMEOUT_S) -> None:
    """Join the job ``spec`` describes (nothing for ``None`` or when already joined). Must run
    before any JAX computation."""
    if spec is None or is_initialized():
        return
    import jax

    # CPU processes exchange gradients through gloo unless the user chose (JAX_CPU_COLLECTIVES_IMPLEMENTATION=mpi).
    if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    log.info("joining a multi-process job (%s): coordinator %s, %s processes, process id %s", spec.source,
             spec.coordinator or "auto", spec.num_processes or "auto", "auto" if spec.process_id is None else spec.process_id)
    jax.distributed.initialize(coordinator_address=spec.coordinator, num_processes=spec.num_processes,
                               process_id=spec.process_id, initialization_timeout=init_timeout,
                               heartbeat_timeout_seconds=heartbeat_timeout,
                               # a dead peer never reaches the shutdown barrier: do not wait 300 s for it
                               shutdown_timeout_seconds=heartbeat_timeout)


def ensure_initialized() -> None:
    """Join the job the environment describes (the Python API; the CLI passes its flags too)."""
    initialize(detect())


def is_main() -> bool:
    """Process 0: the one that writes checkpoints, metrics and the summary."""
    import jax

    return jax.process_index() == 0


def topology(batch_size: int, rows: slice) -> dict:
    """Where this process stands: processes, devices, and its rows of the global batch."""
    import jax

    return {"process": jax.process_index(), "processes": jax.process_count(),
            "local_devices": jax.local_device_count(), "global_devices": jax.device_count(),
            "platform": jax.devices()[0].platform, "batch_size": batch_size, "rows": [rows.start, rows.stop]}


def describe(topo: dict) -> str:
    return (f"process {topo['process']} of {topo['processes']}: {topo['local_devices']} local / "
            f"{topo['global_devices']} global {topo['platform']} device(s); global batch {topo['batch_size']}, "
            f"this process feeds rows {topo['rows'][0]}:{topo['rows'][1]}")


def looks_like_lost_peer(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return any(sign in text for sign in _LOST_PEER)


@contextmanager
def peer_failures(where: Callable[[], str]) -> Iterator[None]:
    """In a multi-process job, re-raise an error that says another process is gone as
    :class:`PeerLost` (``where()`` says how far the run got); everything else passes unchanged."""
    import jax

    try:
        yield
    except Exception as err:
        if jax.process_count() == 1 or isinstance(err, PeerLost) or not looks_like_lost_peer(err):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PeerLost(f"process {jax.process_index()} of {jax.process_count()}: lost contact with another "
                       f"process of the job ({first[:300]}); it probably died or was killed, see its log. "
                       f"{where()}") from err


def exit_now(err: PeerLost) -> None:
    """Print ``err`` and end this process at once with status 1. A normal exit would run JAX's
    shutdown barrier, which waits (``shutdown_timeout``) for the process that is gone."""
    print(f"Error: {err}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)
