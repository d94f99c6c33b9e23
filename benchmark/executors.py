"""The benchmark matrix (models x tasks x seeds) on an executor: ``run_matrix``.

**Engine: datatrove's executors, one rank = one unit (model, task, seed).** Sampling already runs
on them, so the benchmark reuses the same three engines and the same settings
(:class:`bertin_bench.executor.ExecutorOptions`) rather than adding a fourth:

- ``local``: datatrove's process pool, ``workers`` units at a time. datatrove hands each running
  rank a distinct slot (``local_rank``, 0..workers-1); a unit's GPUs or CPU cores come from its
  slot, so two units never share a device.
- ``slurm``: one sbatch job array, one array task per unit, ``--gpus-per-task`` and
  ``--cpus-per-task`` per task (Slurm pins them), ``%workers`` at a time; the command submits and
  returns. Pre-empted tasks are requeued by datatrove's handler.
- ``ray``: datatrove's Ray executor: each unit is a Ray actor with ``num_gpus``/``num_cpus``
  requests, so Ray places units on free GPUs and sets ``CUDA_VISIBLE_DEVICES`` itself, and
  resubmits a unit whose node died.

Ray tasks with resource requests alone would cover local and Ray but not Slurm arrays; datatrove
covers all three with one unit function, and its completion markers and Slurm script are already
tested here (tests/sampling/test_slurm.py).

**What a unit does.** The rank starts a fresh Python process (``python -m benchmark.executors``)
with its devices pinned in the environment *before* JAX is imported in it, and that process runs
:func:`benchmark.runner.run_benchmark` for the one (task, seed). The pool worker, the Ray actor or
the Slurm task only supervises it: they may be reused for several units, a JAX process may not
(its devices are fixed at import).

**The results directory is the state.** The plan is made from the result files: a unit whose
result exists with the same settings is not dispatched. A unit writes its result atomically and
holds its per-unit lock (:func:`benchmark.runner.claim`, an ``flock``) while it runs, so two
executors on one results directory never both run a unit, and a unit that dies (its lock freed by
the kernel, no result written) is simply in the next plan. datatrove's completion markers live in
``RESULTS/.executor/<plan>/`` and only matter within one plan (a Slurm resubmission, a Ray retry);
they are removed when a local or Ray pass finishes complete. The leaderboard reads only the result
files (``bench leaderboard``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from bertin_bench.executor import ExecutorOptions

log = logging.getLogger(__name__)

SLOT_VAR = "BERTIN_BENCH_SLOT"  # the local executor's slot of the running rank
CPUS_VAR = "BERTIN_BENCH_CPUS"  # the cores a local unit on CPU is confined to (comma-separated)
HELD = 3  # a unit process's exit status when another process holds the unit: not a failure


@dataclasses.dataclass(frozen=True)
class Unit:
    """One fine-tuning run: ``model`` (as given to ``bench run``) on ``task`` with ``seed``."""

    model: str
    model_name: str | None
    task: str
    seed: int
    result: str  # its result file, for messages and the final check

    def __str__(self) -> str:
        return f"{self.model_name or self.model} {self.task} seed {self.seed}"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything of ``run_benchmark`` but the model, task and seed: the same for every unit."""

    results_dir: str
    overrides: dict | None = None
    limit_train: int | None = None
    limit_eval: int | None = None
    from_pt: bool | None = None
    data_source: str = "auto"
    revision: str | None = None
    force: bool = False
    redo_stale: bool = False
    progress: bool | None = False


@dataclasses.dataclass
class MatrixRun:
    """What :func:`run_matrix` did: ``units`` dispatched (empty when all were done), the result
    files of the whole matrix found on disk afterwards, and whether the units were only
    submitted (Slurm) rather than run."""

    units: list[Unit]
    results: list[Path]
    submitted: bool
    logging_dir: Path | None


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


# -- one unit --------------------------------------------------------------------------------


class RunUnits:
    """The pipeline of every rank: rank ``r`` runs ``units[r]`` in a fresh process and fails when
    that process fails (datatrove then leaves the rank incomplete)."""

    def __init__(self, units: list[Unit], settings: Settings, options: ExecutorOptions):
        self.units, self.settings, self.options = units, settings, options

    def __repr__(self) -> str:
        return f"RunUnits({len(self.units)} fine-tuning runs)"

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        unit = self.units[rank]
        if self.options.kind == "local":
            env = local_device_env(int(os.environ.get(SLOT_VAR, "0")), self.options)
        else:  # Slurm and Ray have pinned the GPUs and CPUs of this task already
            env = thread_env(self.options.cpus_per_task)
        payload = json.dumps({"unit": dataclasses.asdict(unit), "settings": dataclasses.asdict(self.settings)})
        code = subprocess.run([sys.executable, "-m", "benchmark.executors", payload], env={**os.environ, **env}).returncode
        if code not in (0, HELD):
            raise ChildProcessError(f"{unit} failed (exit status {code}); its output is above, or in the "
                                    "executor's task log")


def _unit_main(payload: str) -> int:
    """The unit process: confine itself to its cores, then fine-tune (JAX is imported only now)."""
    from bertin_bench.procs import die_with_parent

    die_with_parent()  # an orphaned unit would hold its lock and write a result nobody waits for
    if os.environ.get(CPUS_VAR):
        os.sched_setaffinity(0, [int(c) for c in os.environ[CPUS_VAR].split(",")])
    job = json.loads(payload)
    unit, settings = Unit(**job["unit"]), Settings(**job["settings"])
    from benchmark.runner import run_benchmark

    held = []

    def echo(line: str) -> None:
        held.append("another bench run is doing it" in line)
        print(line, file=sys.stderr, flush=True)

    written = run_benchmark(unit.model, [unit.task], seeds=[unit.seed], model_name=unit.model_name,
                            echo=echo, **dataclasses.asdict(settings))
    return HELD if not written and any(held) else 0


# -- the matrix ------------------------------------------------------------------------------


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


def make_executor(step: RunUnits, options: ExecutorOptions, logging_dir: str):
    """The datatrove executor running one rank per unit of ``step`` as ``options`` say."""
    if not logging.getLogger().isEnabledFor(logging.INFO):
        from loguru import logger

        logger.disable("datatrove")  # per-rank chatter; the task logs under logging_dir keep it
    common = dict(tasks=len(step.units), workers=options.workers, logging_dir=logging_dir)
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


def _held_elsewhere(path: Path) -> bool:
    from benchmark.runner import claim

    with claim(path) as mine:
        return not mine


def plan(models: Sequence[str | tuple[str, str | None]], tasks, *, seeds, settings: Settings,
         echo: Callable[[str], None] | None = None) -> tuple[list[Unit], list[Path]]:
    """The units still to do (from the result files) and every result file of the matrix.
    Each model is resolved and every setting checked here, before anything is dispatched."""
    from benchmark.runner import pending, prepare

    say = echo or log.info
    units, every = [], []
    for entry in models:
        model, name = (entry, None) if isinstance(entry, (str, os.PathLike)) else entry
        if Path(model).exists():  # a local directory: units may run elsewhere (cwd of a Slurm task)
            model = Path(model).resolve()
        prepared = prepare(str(model), tasks, seeds=seeds, results_dir=settings.results_dir,
                           overrides=settings.overrides, limit_train=settings.limit_train,
                           limit_eval=settings.limit_eval, model_name=name, from_pt=settings.from_pt,
                           data_source=settings.data_source, revision=settings.revision, echo=say)
        todo = pending(prepared, force=settings.force, redo_stale=settings.redo_stale, echo=say)
        for t in prepared.tasks:
            every += t.paths.values()
        todo_paths = {p for _, _, p in todo}
        for path in every:
            if path not in todo_paths and path.exists():
                say(f"skip {path} (done)")
        units += [Unit(str(model), name, task, seed, str(path)) for task, seed, path in todo]
    return units, every


def run_matrix(models: Sequence[str | tuple[str, str | None]], tasks, *, seeds=3,
               executor: ExecutorOptions = ExecutorOptions(), results_dir: str | Path = "results",
               overrides: dict[str, Any] | None = None, limit_train: int | None = None,
               limit_eval: int | None = None, from_pt: bool | None = None, data_source: str = "auto",
               revision: str | None = None, force: bool = False, redo_stale: bool = False,
               progress: bool | None = False, echo: Callable[[str], None] | None = None) -> MatrixRun:
    """Fine-tune every model of ``models`` (each a model as ``bench run -m`` takes it, or a
    ``(model, model_name)`` pair) on ``tasks`` x ``seeds`` (a count or a list), one unit per
    (model, task, seed), on ``executor``. The other arguments are :func:`run_benchmark`'s.

    Local and Ray return when every unit has run; a unit that failed raises ChildProcessError
    naming it once the others are done or stopped (rerun: finished units are skipped). Slurm
    returns once the array is submitted (``submitted=True``)."""
    say = echo or log.info
    settings = Settings(results_dir=str(Path(results_dir).resolve()), overrides=dict(overrides) if overrides else None,
                        limit_train=limit_train, limit_eval=limit_eval, from_pt=from_pt, data_source=data_source,
                        revision=revision, force=force, redo_stale=redo_stale, progress=progress)
    if executor.kind == "local":
        local_device_env(0, executor)  # too many workers for the GPUs: say so before anything runs
    units, every = plan(models, tasks, seeds=seeds, settings=settings, echo=say)
    if not units:
        return MatrixRun([], [p for p in every if p.exists()], False, None)
    key = json.dumps([[dataclasses.asdict(u) for u in units], dataclasses.asdict(settings)], sort_keys=True)
    logging_dir = Path(executor.logging_dir or Path(results_dir) / ".executor" / hashlib.sha256(key.encode()).hexdigest()[:16])
    say(f"{len(units)} unit(s) on the {executor.kind} executor, {executor.workers} at a time (logs: {logging_dir})")
    runner = make_executor(RunUnits(units, settings, executor), executor, str(logging_dir))
    failure = None
    try:
        runner.run()
    except ChildProcessError as err:  # a local unit failed: datatrove stopped the pass
        failure = err
    if executor.kind == "slurm":
        return MatrixRun(units, [p for p in every if p.exists()], True, logging_dir)
    missing = [u for u in units if not Path(u.result).exists() and not _held_elsewhere(Path(u.result))]
    if missing or failure:
        names = "; ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ChildProcessError(f"{len(missing)} of {len(units)} unit(s) did not finish ({names})"
                                f"{': ' + str(failure) if failure else ''}. Rerun the same command: finished units "
                                f"are skipped; task logs in {logging_dir}/logs")
    shutil.rmtree(logging_dir, ignore_errors=True)  # all complete: the plan's markers are spent
    if not executor.logging_dir:
        with contextlib.suppress(OSError):
            logging_dir.parent.rmdir()  # .executor/, when no other plan is in flight
    return MatrixRun(units, [p for p in every if p.exists()], False, logging_dir)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.exit(_unit_main(sys.argv[1]))
