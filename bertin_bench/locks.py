"""One run per output directory: an exclusive OS-level lock held for the whole run.

Two runs writing into one directory would share ``.partial`` files and merge or lose output, so a
run takes ``DIR/.bench.lock`` before it writes anything and keeps it until it ends. The lock is
``fcntl.flock`` (through ``filelock``): the kernel releases it when its holder dies, however it
dies (SIGKILL, OOM killer, a closed terminal), so there is no stale claim to clean up on one
machine. A second run refuses at once with a message naming the holder (``wait=True`` makes it
wait instead).

What it guarantees on a shared cluster file system: ``flock`` is honoured across nodes on NFSv4,
Lustre (mounted with ``flock``) and GPFS; on NFSv3 or a Lustre mount with ``localflock`` it only
excludes runs on the same node. Runs on several nodes must then get distinct output directories
(the executors' ranks already write distinct files).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from bertin_bench.provenance import now_iso

LOCK_NAME = ".bench.lock"
HOLDER_NAME = ".bench.lock.holder"  # who holds it, for the message only (the lock is the flock)


class OutputLocked(RuntimeError):
    """Another live run holds the output directory."""


def _holder(directory: Path) -> str:
    try:
        info = json.loads((directory / HOLDER_NAME).read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextlib.contextmanager
def output_lock(directory: str | os.PathLike, command: str, *, wait: bool = False,
                timeout: float | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of ``directory`` (created if needed) while the block runs.

    ``wait=False`` (default): refuse at once with :class:`OutputLocked` when a live run holds it.
    ``wait=True``: block until it is free (``timeout`` seconds at most, then refuse).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK_NAME), thread_local=False)
    try:
        lock.acquire(timeout=(timeout if timeout is not None else -1) if wait else 0)
    except Timeout:
        raise OutputLocked(
            f"{directory} is in use by {_holder(directory)}: wait for that run to finish or stop it "
            "(the lock frees itself when its holder dies)") from None
    try:
        (directory / HOLDER_NAME).write_text(json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": now_iso(),
             "t": time.time()}), encoding="utf-8")
        yield directory
    finally:
        with contextlib.suppress(OSError):
            (directory / HOLDER_NAME).unlink()
        lock.release()
