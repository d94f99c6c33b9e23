"""The study's units on an executor (``executor:`` of the study config): each pre-training
(arm, seed) is one unit, and the benchmark matrix is :func:`benchmark.executors.run_matrix`'s.

A pre-training unit is one rank of a :class:`bertin_bench.units.UnitStep`: a fresh process
(``python -m study.unit PAYLOAD``, :mod:`study.unit`) that rebuilds the study from its config and runs
:meth:`study.run.Study.pretrain` for its (arm, seed) -- exactly what the serial study runs, so
the model is the same wherever it trained. It is a single-host job: on Slurm one array task with
``gpus_per_task`` GPUs, which the trainer's data-parallel mesh uses together; with Ray one actor
with ``num_gpus``; locally one slot's devices. (Spanning hosts with one model is ``bench
pretrain`` under ``srun``: docs/scale.md.)

The state is the stage markers: a unit whose marker matches is not dispatched, a unit that died
resumes from its last checkpoint on the next run, and the study goes on to the evaluation only
when every model is exported. On Slurm the command submits and returns; run it again when the
jobs are done and it carries on from there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bertin_bench import markers, paths
from bertin_bench.units import UnitStep, finish_pass, run_units
from study.layout import MARK

if TYPE_CHECKING:
    from study.run import Study


@contextlib.contextmanager
def shared_compilation_cache(directory: Path):
    """Unit processes inherit the study's on-disk XLA cache through the environment (where a
    cache set by the user, ``JAX_COMPILATION_CACHE_DIR``, wins), so a task's second model reuses
    the first one's programs as in a serial study."""
    wanted = {"JAX_COMPILATION_CACHE_DIR": str(directory.resolve()),
              "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.1"}
    before = {k: os.environ.get(k) for k in wanted}
    for k, v in wanted.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _absolute(study: "Study") -> dict:
    """The config of ``study`` with its work and results dirs absolute: a Slurm task or a Ray
    worker may start elsewhere."""
    cfg = study.cfg
    return dataclasses.replace(cfg, work_dir=str(cfg.work.resolve()), results_dir=str(cfg.results.resolve())).to_dict()


def pretrain_units(study: "Study", units: list[tuple[str, int]]) -> bool:
    """Pre-train ``units`` (each an (arm, seed) of ``study``) on the study's executor. Returns
    True when they were only submitted (Slurm); raises ChildProcessError naming the units that
    did not finish (local, Ray)."""
    options, lay = study.cfg.executor, study.layout
    config, data = _absolute(study), paths.data_dir()
    payloads = [json.dumps({"config": config, "data_dir": str(data) if data else None, "arm": arm, "seed": seed})
                for arm, seed in units]
    names = [f"pre-training {arm} s{seed}" for arm, seed in units]
    plan = hashlib.sha256(json.dumps(payloads).encode()).hexdigest()[:16]
    logging_dir = lay.work / ".executor" / f"pretrain-{plan}"  # (the config may not set one)
    study.echo(f"[3/5] {len(units)} pre-training unit(s) on the {options.kind} executor, {options.workers} at a time "
               f"(logs: {logging_dir})")
    step = UnitStep("study.unit", payloads, names, options, what="pre-training unit(s)")
    with shared_compilation_cache(lay.jax_cache):
        failure = run_units(step, options, str(logging_dir))
    if options.kind == "slurm":
        return True  # (the study says so: Study.submitted)
    missing = [n for (arm, seed), n in zip(units, names)
               if not markers.is_done(lay.model_stage_dir(arm, seed), study.pretrain_key(arm, seed), MARK)]
    finish_pass(step, missing, failure, logging_dir, own_logging_dir=True,
                rerun="finished units are skipped, the others resume from their last checkpoint")
    return False
