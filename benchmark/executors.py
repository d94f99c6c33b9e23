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
(its devices are fixed at import). That machinery is shared with the study's pre-training units:
:mod:`bertin_bench.units`.

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

import dataclasses
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from bertin_bench.executor import ExecutorOptions
from bertin_bench.units import HELD, UnitStep, confine, finish_pass, local_device_env, run_units

log = logging.getLogger(__name__)



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


# -- one unit --------------------------------------------------------------------------------


def _unit_main(payload: str) -> int:
    """The unit process: confine itself to its cores, then fine-tune (JAX is imported only now)."""
    confine()
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
    shared = dataclasses.asdict(settings)
    step = UnitStep("benchmark.executors", [json.dumps({"unit": dataclasses.asdict(u), "settings": shared}) for u in units],
                    [str(u) for u in units], executor)
    failure = run_units(step, executor, str(logging_dir))  # a local unit failed: datatrove stopped the pass
    if executor.kind == "slurm":
        return MatrixRun(units, [p for p in every if p.exists()], True, logging_dir)
    missing = [str(u) for u in units if not Path(u.result).exists() and not _held_elsewhere(Path(u.result))]
    finish_pass(step, missing, failure, logging_dir, own_logging_dir=not executor.logging_dir)
    return MatrixRun(units, [p for p in every if p.exists()], False, logging_dir)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.exit(_unit_main(sys.argv[1]))
