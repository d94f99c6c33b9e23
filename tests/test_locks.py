"""The output lock keeps a second run out while the first lives, and frees itself when the first
dies by SIGKILL; workers started with die_with_parent do not outlive their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bertin_bench.locks import OutputLocked, output_lock

HOLD = textwrap.dedent("""
    import sys, time
    from bertin_bench.locks import output_lock
    with output_lock(sys.argv[1], "holder"):
        print("held", flush=True)
        time.sleep(60)
""")


def _start_holder(directory):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_is_refused_while_the_first_lives_and_admitted_after_a_kill(tmp_path):
    proc = _start_holder(tmp_path)
    try:
        with pytest.raises(OutputLocked, match=rf"in use by pid {proc.pid} .*holder"):
            with output_lock(tmp_path, "second"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with output_lock(tmp_path, "after the kill"):  # no stale claim: the kernel freed the flock
        pass


def test_wait_blocks_until_free_or_times_out(tmp_path):
    proc = _start_holder(tmp_path)
    try:
        t0 = time.monotonic()
        with pytest.raises(OutputLocked):
            with output_lock(tmp_path, "waiter", wait=True, timeout=0.5):
                pass
        assert time.monotonic() - t0 >= 0.5
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_worker_dies_with_its_killed_parent(tmp_path):
    pidfile = tmp_path / "worker.pid"
    parent = textwrap.dedent(f"""
        import multiprocessing as mp, os, time
        from bertin_bench.procs import die_with_parent
        def work(parent):
            die_with_parent(parent)
            open({str(pidfile)!r}, "w").write(str(os.getpid()))
            time.sleep(60)
        if __name__ == "__main__":
            mp.set_start_method("spawn")
            p = mp.Process(target=work, args=(os.getpid(),))
            p.start()
            time.sleep(60)
    """)
    script = tmp_path / "parent.py"
    script.write_text(parent)
    proc = subprocess.Popen([sys.executable, str(script)])
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.05)
    worker = int(pidfile.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its SIGKILLed parent")
