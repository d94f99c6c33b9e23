"""Units of work on datatrove's executors, one rank = one unit, each in a fresh process.

The benchmark's fine-tuning runs (``benchmark.executors``) and the study's pre-training runs
(``study.dispatch``) are both lists of independent, JAX-heavy units. They share what is here:

- :class:`UnitStep`, the pipeline of every rank: rank ``r`` starts ``python -m MODULE PAYLOAD``
  for ``payloads[r]`` with its devices pinned in the environment, and fails when that process
  fails. The rank's own process (a pool worker, a Ray actor, a Slurm task) only supervises: it may
  be reused for several units, a JAX process may not (its devices are fixed at import);
- :func:`make_executor`, the datatrove executor that runs a step's ranks as
  :class:`~bertin_bench.executor.ExecutorOptions` say (local pool, Slurm job array with
  ``--gpus-per-task``, Ray actors with ``num_gpus``/``num_cpus``);
- the devices of a local unit (:func:`local_device_env`) and :func:`confine`, the first call of a
  unit process.

A unit's module decides what the payload means and where its output goes; its output (a result
file, a stage marker) is the state, and datatrove's completion markers only matter within one
pass. No stage is imported here, and datatrove only inside the functions that build executors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bertin_bench.executor import ExecutorOptions

SLOT_VAR = "BERTIN_BENCH_SLOT"  # the local executor's slot of the running rank
CPUS_VAR = "BERTIN_BENCH_CPUS"  # the cores a local unit on CPU is confined to (comma-separated)
HELD = 3  # a unit process's exit status when another process holds the unit: not a failure


# -- devices ---------------------------------------------------------------------------------


def visible_gpus() -> list[str]:
    """The GPUs this machine shows, without importing JAX: ``CUDA_VISIBLE_DEVICES`` when set, else
    ``nvidia-smi -L``; none under ``JAX_PLATFORMS=cpu``."""
    if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return []
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def thread_env(threads: int) -> dict[str, str]:
    """Keep a unit's math libraries to ``threads`` threads (numpy's BLAS, OpenMP; XLA's CPU client
    sizes its pool from the cores the process may use, and runs single-threaded with 1)."""
    env = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    return env


def local_device_env(slot: int, options: ExecutorOptions, gpus: list[str] | None = None,
                     cores: list[int] | None = None) -> dict[str, str]:
    """The environment of the local unit in ``slot``: its own GPUs (``CUDA_VISIBLE_DEVICES``) when
    the machine has GPUs, else its own share of the CPU cores (and as many threads)."""
    gpus = visible_gpus() if gpus is None else gpus
    workers = options.workers
    if gpus:
        each = options.gpus_per_task or max(1, len(gpus) // workers)
        if workers * each > len(gpus):
            raise ValueError(f"--workers {workers} x {each} GPU(s) per worker needs {workers * each} GPUs; "
                             f"this machine shows {len(gpus)} ({', '.join(gpus)}): lower --workers or --gpus-per-task")
        return {"CUDA_VISIBLE_DEVICES": ",".join(gpus[slot * each:(slot + 1) * each])}
    cores = sorted(os.sched_getaffinity(0)) if cores is None else cores
    each = max(1, len(cores) // workers)
    start = (slot * each) % len(cores)
    mine = cores[start:start + each]
    return {CPUS_VAR: ",".join(map(str, mine)), **thread_env(len(mine))}


def confine() -> None:
    """First thing in a unit process, before JAX is imported: die with the supervising rank (an
    orphaned unit would hold its lock and write what nobody waits for) and keep to the cores the
    local executor gave it."""
    from bertin_bench.procs import die_with_parent

    die_with_parent()
    if os.environ.get(CPUS_VAR):
        os.sched_setaffinity(0, [int(c) for c in os.environ[CPUS_VAR].split(",")])


# -- the step and its executor -----------------------------------------------------------------


class UnitStep:
    """The pipeline of every rank: rank ``r`` runs ``python -m module payloads[r]`` in a fresh
    process with its devices pinned, and fails when that process fails (datatrove then leaves the
    rank incomplete). ``names[r]`` says which unit it is in messages."""

    def __init__(self, module: str, payloads: list[str], names: list[str], options: ExecutorOptions,
                 what: str = "unit(s)"):  # `what`: the units in messages ("pre-training unit(s)")
        if len(payloads) != len(names):
            raise ValueError("one name per payload")
        self.module, self.payloads, self.names, self.options, self.what = module, payloads, names, options, what

    def __len__(self) -> int:
        return len(self.payloads)

    def __repr__(self) -> str:
        return f"UnitStep({len(self)} {self.what})"

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        if self.options.kind == "local":
            env = local_device_env(int(os.environ.get(SLOT_VAR, "0")), self.options)
        else:  # Slurm and Ray have pinned the GPUs and CPUs of this task already
            env = thread_env(self.options.cpus_per_task)
        code = subprocess.run([sys.executable, "-m", self.module, self.payloads[rank]],
                              env={**os.environ, **env}).returncode
        if code not in (0, HELD):
            raise ChildProcessError(f"{self.names[rank]} failed (exit status {code}); its output is above, or in "
                                    "the executor's task log")


def _slot_executor_class():
    from datatrove.executor import LocalPipelineExecutor

    from bertin_bench.procs import die_with_parent

    class SlotLocalExecutor(LocalPipelineExecutor):
        """datatrove's local executor, telling each rank its slot (for its devices), with pool
        workers that die with the command."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.main_pid = os.getpid()
            self.quiet = not logging.getLogger().isEnabledFor(logging.INFO)  # pickled into the workers

        def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
            if os.getpid() != self.main_pid:
                die_with_parent()
            os.environ[SLOT_VAR] = str(local_rank)
            # datatrove logs a rank at INFO on the console for local_rank 0 only: unless `bench -v`,
            # errors only (the task log files keep everything).
            return super()._run_for_rank(rank, local_rank=1 if self.quiet else local_rank, node_rank=node_rank)

    return SlotLocalExecutor


def make_executor(step: UnitStep, options: ExecutorOptions, logging_dir: str):
    """The datatrove executor running one rank per unit of ``step`` as ``options`` say."""
    if not logging.getLogger().isEnabledFor(logging.INFO):
        from loguru import logger

        logger.disable("datatrove")  # per-rank chatter; the task logs under logging_dir keep it
    common = dict(tasks=len(step), workers=options.workers, logging_dir=logging_dir)
    if options.kind == "local":
        # forkserver: the pool workers start clean even when this process has imported JAX (a
        # study, the tests); datatrove's Manager uses the default context, so that one too.
        if "jax" in sys.modules:
            import multiprocess

            multiprocess.set_start_method("forkserver", force=True)
        return _slot_executor_class()([step], start_method="forkserver", **common)
    resources = dict(cpus_per_task=options.cpus_per_task, mem_per_cpu_gb=options.mem_per_cpu_gb)
    if options.kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        named = {"job_name": options.slurm_job_name} if options.slurm_job_name else {}
        gpus = {"gpus-per-task": options.gpus_per_task} if options.gpus_per_task else {}
        return SlurmPipelineExecutor([step], partition=options.slurm_partition, time=options.slurm_time,
                                     sbatch_args=gpus, **resources, **named, **common)
    if options.kind == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("executor kind 'ray' needs Ray: pip install 'bertin-bench[ray]'") from None
        from datatrove.executor.ray import RayPipelineExecutor

        return RayPipelineExecutor([step], gpus_per_task=options.gpus_per_task, **resources, **common)
    raise AssertionError(options.kind)


def run_units(step: UnitStep, options: ExecutorOptions, logging_dir: str) -> ChildProcessError | None:
    """Run every rank of ``step``; returns (does not raise) a local unit's failure, after which
    datatrove has stopped the pass: the caller reads its outputs to say which units are missing."""
    if options.kind == "local":
        local_device_env(0, options)  # too many workers for the GPUs: say so before anything runs
    try:
        make_executor(step, options, logging_dir).run()
    except ChildProcessError as err:
        return err
    return None


def finish_pass(step: UnitStep, missing: list[str], failure: ChildProcessError | None, logging_dir: Path, *,
                own_logging_dir: bool, rerun: str = "finished units are skipped") -> None:
    """After a local or Ray pass: raise one error naming the ``missing`` units (their names), or,
    when every unit finished, remove the pass's datatrove state (its completion markers only
    matter within one pass), and ``.executor/`` too when it was ours and nothing else is in it."""
    if missing or failure:
        names = "; ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ChildProcessError(f"{len(missing)} of {len(step)} {step.what} did not finish ({names})"
                                f"{': ' + str(failure) if failure else ''}. Rerun the same command: {rerun}; "
                                f"task logs in {logging_dir}/logs")
    shutil.rmtree(logging_dir, ignore_errors=True)
    if own_logging_dir:
        with contextlib.suppress(OSError):
            logging_dir.parent.rmdir()  # .executor/, when no other pass is in flight
