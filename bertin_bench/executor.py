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

    def __post_init__(self) -> None:
        # Checked here, at construction, so a bad value fails before any work starts and the
        # message names the option rather than surfacing as a datatrove error mid-run.
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor kind {self.kind!r} is unknown; choose one of {', '.join(EXECUTORS)}")
        for name in ("tasks", "workers", "cpus_per_task", "mem_per_cpu_gb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"executor option {name} must be an integer >= 1, got {value!r}")
        if self.kind == "slurm" and not (self.slurm_partition and self.slurm_time):
            raise ValueError("executor kind 'slurm' needs slurm_partition and slurm_time "
                             "(--slurm-partition and --slurm-time)")
