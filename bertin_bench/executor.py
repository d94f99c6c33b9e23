"""Where a datatrove pipeline runs: the executor settings, as one plain value.

This module only describes and checks the settings; it imports no datatrove, so any stage (and a
CLI that has not decided to run anything yet) can build and validate them cheaply. Each stage that
runs datatrove turns them into an executor itself (sampling: ``sampling/executors.py``).
"""

from __future__ import annotations

import dataclasses

EXECUTORS = ("local", "slurm", "ray")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExecutorOptions:
    """How and where the tasks of a pipeline run.

    kind
        ``local`` (processes on this machine), ``slurm`` (one sbatch job array, submitted and left
        running: the command returns at once) or ``ray`` (tasks on a running Ray cluster, or a
        local Ray started on demand; needs the ``ray`` extra).
    tasks
        Number of tasks, i.e. of output shards: the input is split into this many parts. Part of
        the output's identity (a resumed run must use the same number).
    workers
        Tasks that run at the same time (local processes, Slurm array slots, Ray tasks in flight).
        Does not change the output.
    logging_dir
        Where datatrove keeps its logs, per-task stats and completion markers (the resume state).
        None: the stage's own place (sampling: ``OUT/logs``).
    cpus_per_task, mem_per_cpu_gb
        Resources asked for each task on ``slurm`` and ``ray`` (datatrove's defaults: 1 CPU,
        2 GB per CPU); ignored by ``local``.
    slurm_partition, slurm_time
        The Slurm partition and time limit (e.g. ``04:00:00``) of each task; required with
        ``kind="slurm"``.
    slurm_job_name
        The Slurm job name (None: datatrove's default).
    gpus_per_task
        GPUs each task gets (Slurm ``--gpus-per-task``, Ray ``num_gpus``; local: the GPUs of this
        machine are dealt out to the workers, this many each). 0: none on Slurm and Ray; local
        deals every visible GPU out evenly. Sampling runs on CPUs and leaves it at 0.
    """

    kind: str = "local"
    tasks: int = 1
    workers: int = 1
    logging_dir: str | None = None
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2  # whole GB: Slurm's --mem-per-cpu takes an integer size
    slurm_partition: str | None = None
    slurm_time: str | None = None
    slurm_job_name: str | None = None
    gpus_per_task: int = 0

    def __post_init__(self) -> None:
        # Checked here, at construction, so a bad value fails before any work starts and the
        # message names the option rather than surfacing as a datatrove error mid-run.
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor kind {self.kind!r} is unknown; choose one of {', '.join(EXECUTORS)}")
        for name in ("tasks", "workers", "cpus_per_task", "mem_per_cpu_gb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"executor option {name} must be an integer >= 1, got {value!r}")
        if isinstance(self.gpus_per_task, bool) or not isinstance(self.gpus_per_task, int) or self.gpus_per_task < 0:
            raise ValueError(f"executor option gpus_per_task must be an integer >= 0, got {self.gpus_per_task!r}")
        if self.kind == "slurm" and not (self.slurm_partition and self.slurm_time):
            raise ValueError("executor kind 'slurm' needs slurm_partition and slurm_time "
                             "(--slurm-partition and --slurm-time)")


def executor_click_options(*, workers_help: str, gpus: bool = False):
    """The executor flags as one click decorator, so every command that runs on an executor spells
    and documents them the same way (``--executor``, ``--workers``, ``--slurm-partition``,
    ``--slurm-time``, ``--cpus-per-task``, ``--mem-per-cpu-gb``, and ``--gpus-per-task`` where the
    work uses GPUs). The command receives them as keyword arguments of the same names;
    :func:`options_from_cli` turns them into :class:`ExecutorOptions`."""
    import click

    options = [
        click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
                     help="Where the work runs: local processes, one Slurm job array, or Ray tasks."),
        click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help=workers_help),
        click.option("--slurm-partition", default=None, help="Slurm partition (--executor slurm)."),
        click.option("--slurm-time", default=None, help="Slurm time limit, e.g. 04:00:00 (--executor slurm)."),
        click.option("--cpus-per-task", "--slurm-cpus-per-task", "cpus_per_task", default=1, show_default=True,
                     type=click.IntRange(1), help="CPUs per task (--executor slurm or ray)."),
        click.option("--mem-per-cpu-gb", "--slurm-mem-per-cpu-gb", "mem_per_cpu_gb", default=2, show_default=True,
                     type=click.IntRange(1), help="Memory per CPU in GB (--executor slurm or ray)."),
    ]
    if gpus:
        options.append(click.option(
            "--gpus-per-task", "gpus_per_task", default=0, show_default=True, type=click.IntRange(0),
            help="GPUs per task: Slurm --gpus-per-task, Ray num_gpus; local: GPUs per worker (0: the visible "
                 "GPUs dealt out evenly)."))

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def options_from_cli(*, executor: str, workers: int, slurm_partition, slurm_time, cpus_per_task: int,
                     mem_per_cpu_gb: int, gpus_per_task: int = 0, **named) -> ExecutorOptions:
    """:class:`ExecutorOptions` from the flags of :func:`executor_click_options` (plus any field
    given by name, e.g. ``tasks`` or ``slurm_job_name``)."""
    return ExecutorOptions(kind=executor, workers=workers, slurm_partition=slurm_partition, slurm_time=slurm_time,
                           cpus_per_task=cpus_per_task, mem_per_cpu_gb=mem_per_cpu_gb, gpus_per_task=gpus_per_task,
                           **named)
