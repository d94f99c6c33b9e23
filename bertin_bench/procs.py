"""Worker processes that die with their parent.

A pool worker or executor manager re-parented after its parent was SIGKILLed keeps writing the
parent's ``.partial`` files; a rerun then races it. On Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``
asks the kernel to kill the calling process when its parent thread exits, so each worker calls
:func:`die_with_parent` first thing. Elsewhere it is a no-op and the output lock
(:mod:`bertin_bench.locks`) still keeps a second run out while an orphan lives.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int | None = None) -> bool:
    """Have the kernel SIGKILL this process when its parent dies. ``expected_parent``: the pid the
    caller's parent should have; if the parent already died before the call (the race the prctl
    man page warns about), exit now. Returns whether the kernel took the request."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)  # the parent is already gone: nobody will read what this worker writes
    return ok
