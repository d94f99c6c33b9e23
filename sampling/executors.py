"""datatrove executors from :class:`bertin_bench.executor.ExecutorOptions`.

The settings are a plain value in the ground package (the benchmark will share them); what they
mean for datatrove -- which executor class, which keyword arguments, how the local one logs and
starts its processes -- is decided here, once.
"""

from __future__ import annotations

import logging
import sys

from sampling._lazy_hub import import_datatrove_io

import_datatrove_io()  # before the datatrove imports below: see sampling/_lazy_hub.py

from datatrove.executor import LocalPipelineExecutor  # noqa: E402

from bertin_bench.executor import ExecutorOptions  # noqa: E402
from sampling.options import SampleError  # noqa: E402


def _quiet() -> bool:
    """datatrove logs every step of every task at INFO; show that only with `bench -v`."""
    return not logging.getLogger().isEnabledFor(logging.INFO)


class QuietLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor, with the per-task console log at ERROR level unless ``bench -v``.

    datatrove uses ``local_rank`` only to pick the console level (INFO for local rank 0, ERROR for
    the others); the task log files under OUT/logs/logs/ keep every message either way.
    """

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        return super()._run_for_rank(rank, local_rank=1 if _quiet() else local_rank, node_rank=node_rank)


def make_executor(pipeline: list, options: ExecutorOptions, logging_dir: str):
    """The datatrove executor that runs ``pipeline`` as ``options`` say, its state in ``logging_dir``."""
    common = dict(tasks=options.tasks, workers=options.workers, logging_dir=logging_dir)
    if options.kind == "local":
        from loguru import logger

        # The executor's own messages (a summary table of every step, "k/n tasks completed") go to
        # the console whatever the task loggers say; the task logs stay complete either way.
        (logger.disable if _quiet() else logger.enable)("datatrove.executor.local")
        # fork: models load lazily, so children start instantly with nothing heavy to copy. But a
        # process that has imported JAX (`bench study`, the test suite) runs JAX's threads, and
        # forking a multithreaded process can deadlock: use forkserver there (steps pickle).
        start_method = "fork"
        if "jax" in sys.modules:
            import multiprocess

            start_method = "forkserver"
            # datatrove's run() also starts a multiprocess.Manager() with the default context,
            # even for one worker: make that default forkserver too in a JAX process.
            multiprocess.set_start_method("forkserver", force=True)
        return QuietLocalExecutor(pipeline, start_method=start_method, **common)
    resources = dict(cpus_per_task=options.cpus_per_task, mem_per_cpu_gb=options.mem_per_cpu_gb)
    if options.kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        named = {"job_name": options.slurm_job_name} if options.slurm_job_name else {}
        return SlurmPipelineExecutor(pipeline, partition=options.slurm_partition, time=options.slurm_time,
                                     **resources, **named, **common)
    if options.kind == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SampleError("executor kind 'ray' needs Ray: pip install 'bertin-bench[ray]'") from None
        from datatrove.executor.ray import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, **resources, **common)
    raise AssertionError(options.kind)  # ExecutorOptions admits no other kind


def completion_view(logging_dir: str, tasks: int) -> LocalPipelineExecutor:
    """An executor with no steps, for asking which tasks of a finished or running pass completed
    (``get_incomplete_ranks``): the answer comes from the completion markers in ``logging_dir``,
    the same whichever executor ran the tasks, and building a local one starts nothing."""
    return LocalPipelineExecutor([], tasks=tasks, logging_dir=logging_dir)
