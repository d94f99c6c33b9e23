"""datatrove executors from :class:`bertin_bench.executor.ExecutorOptions`.

The settings are a plain value in the ground package (the benchmark will share them); what they
mean for datatrove -- which executor class, which keyword arguments, how the local one logs and
starts its processes -- is decided here, once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from sampling._lazy_hub import import_datatrove_io

import_datatrove_io()  # before the datatrove imports below: see sampling/_lazy_hub.py

from datatrove.executor import LocalPipelineExecutor  # noqa: E402

from bertin_bench.executor import ExecutorOptions  # noqa: E402
from bertin_bench.procs import die_with_parent  # noqa: E402
from sampling.options import SampleError  # noqa: E402


def _quiet() -> bool:
    """datatrove logs every step of every task at INFO; show that only with `bench -v`."""
    return not logging.getLogger().isEnabledFor(logging.INFO)


def die_with_main(main_pid: int) -> None:
    """First thing in every process a local run starts (its pool workers and the manager): be
    SIGKILLed by the kernel when the parent dies.

    Without it a SIGKILL of the main process only (an OOM killer, a closed terminal) leaves the
    workers re-parented and writing the run's ``.partial`` shards, and the manager alive for
    good; they also keep the output lock (an inherited descriptor), so the rerun is refused.
    Under fork the parent is the main process; under forkserver it is the fork server, which
    exits when the main process dies, so the chain still ends. The liveness check covers a main
    process that died before the kernel took the request."""
    if os.getppid() == main_pid:
        die_with_parent(main_pid)
        return
    die_with_parent()
    try:
        os.kill(main_pid, 0)
    except ProcessLookupError:
        os._exit(1)  # the run is gone: nobody will read what this process writes


@contextlib.contextmanager
def _manager_dies_with(main_pid: int):
    """datatrove's ``run()`` starts ``multiprocess.Manager()`` (the rank queue, the completion
    counter) with no way to pass it an initializer: for the duration of the call, that name makes
    the same manager with :func:`die_with_main` as its initializer."""
    import multiprocess
    from multiprocess.managers import SyncManager

    original = multiprocess.Manager

    def manager():
        m = SyncManager(ctx=multiprocess.get_context())
        m.start(initializer=die_with_main, initargs=(main_pid,))
        return m

    multiprocess.Manager = manager
    try:
        yield
    finally:
        multiprocess.Manager = original


class _ConsoleWithoutTracebacks:
    """stderr for a task's console log unless ``bench -v``: a failing task's message comes back to
    the command, which prints it as one line (``bertin_bench.errors``); datatrove also logs it with
    its traceback, which stays in the task log file (``OUT/logs/logs/task_NNNNN.log``) but is not
    shown. Everything else (progress bars, other messages) passes through. loguru hands a stream
    sink a ``str`` with the ``record`` attribute its docs describe."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, message):
        record = getattr(message, "record", None)
        if record is not None and record.get("exception") is not None:
            return len(message)
        return self._stream.write(message)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class QuietLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor, with the per-task console log at ERROR level (and without the
    traceback of a failing task) unless ``bench -v``, and whose processes die with the command.

    datatrove uses ``local_rank`` only to pick the console level (INFO for local rank 0, ERROR for
    the others); the task log files under OUT/logs/logs/ keep every message either way.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.main_pid = os.getpid()  # pickled with the executor into each pool worker

    def run(self):
        with _manager_dies_with(os.getpid()):
            return super().run()

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        if os.getpid() != self.main_pid:  # a pool worker (one worker: tasks run in the command)
            die_with_main(self.main_pid)
        quiet = _quiet()
        console = contextlib.redirect_stderr(_ConsoleWithoutTracebacks(sys.stderr)) if quiet else contextlib.nullcontext()
        with console:
            return super()._run_for_rank(rank, local_rank=1 if quiet else local_rank, node_rank=node_rank)


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
