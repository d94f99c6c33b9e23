"""Helpers for the fault suite: the real ``bench`` command in a subprocess, kills, the process table.

Each scenario runs ``bench`` the way a user does (a separate process, its own session so a kill
of "the whole group" reaches its workers and nothing else), then asserts what the user gets: the
exit code, a message naming the thing, the output's ids against an uninterrupted run, and that no
process of the run is left behind (found by process group in ``/proc``: a worker re-parented after
its parent was killed keeps its group, so the test still sees it).
"""

from __future__ import annotations

import gzip
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = shutil.which("bench", path=os.path.dirname(sys.executable)) or shutil.which("bench")


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONBREAKPOINT", None)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    return env


def bench(*args, timeout: float = 120, cwd=None) -> subprocess.CompletedProcess:
    """Run ``bench ARGS`` to the end; stdout and stderr together in ``.output``."""
    if BENCH is None:
        pytest.skip("the bench command is not installed (pip install -e .)")
    res = subprocess.run([BENCH, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=timeout, cwd=cwd, env=_env())
    res.output = res.stdout
    return res


def start_bench(*args, log: Path) -> subprocess.Popen:
    """Start ``bench ARGS`` in its own session (process group = its pid); output to ``log``."""
    if BENCH is None:
        pytest.skip("the bench command is not installed (pip install -e .)")
    with open(log, "wb") as out:
        return subprocess.Popen([BENCH, *map(str, args)], stdout=out, stderr=subprocess.STDOUT, env=_env(),
                                start_new_session=True)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``, from /proc."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "(comm)": state ppid pgrp ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def wait_group_gone(pgid: int, timeout: float = 10) -> list[int]:
    """Wait until no process of the group is alive; returns those still alive at the timeout."""
    deadline = time.monotonic() + timeout
    while (alive := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def kill_group(pgid: int) -> None:
    """Clean-up: SIGKILL whatever is left of a group this test started."""
    for pid in group_members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(predicate, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def visible_partials(out_dir: Path) -> list[Path]:
    """``.partial`` files anywhere under ``out_dir`` (a finished run has none)."""
    return sorted(Path(out_dir).rglob("*.partial"))


@pytest.fixture(scope="session")
def web_docs(web_sample, tmp_path_factory):
    """Factory: the first ``n`` records of the real web sample as a .jsonl.gz file (cached per n)."""
    cache: dict[int, Path] = {}
    root = tmp_path_factory.mktemp("fault_inputs")

    def make(n: int) -> Path:
        if n not in cache:
            path = root / f"web_{n}.jsonl.gz"
            with gzip.open(web_sample, "rb") as src, gzip.open(path, "wb", compresslevel=1) as dst:
                dst.writelines(itertools.islice(src, n))
            cache[n] = path
        return cache[n]

    return make
