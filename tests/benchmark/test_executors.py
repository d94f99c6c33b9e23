"""The benchmark matrix on executors (benchmark/executors.py), on the tiny model and real CoNLL data:
Ray (a local instance, 2 workers) and Slurm (the fake scheduler of tests/sampling) write the same
result files as a serial run; a killed unit is redone by the next run and nothing is duplicated;
each local unit gets its own devices."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import results
from benchmark.executors import run_matrix
from bertin_bench.units import local_device_env
from benchmark.runner import run_benchmark
from bertin_bench import paths
from bertin_bench.executor import ExecutorOptions
from tests.faults.conftest import kill_group, start_bench, wait_for
from tests.sampling.test_slurm import FAKE_SLURM, run_queue

TASK = "ner_conll2002_es"
SETTINGS = dict(overrides={"epochs": 2, "learning_rate": 1e-3, "max_length": 32}, limit_train=48, limit_eval=32)
CLI = ["-t", TASK, "--seeds", "2", "--model-name", "tiny", "--limit-train", "48", "--limit-eval", "32",
       "--epochs", "2", "--lr", "1e-3", "--set", "max_length=32", "--no-progress"]


def task_dir(out: Path) -> Path:
    return out / "runs" / "tiny" / TASK


def assert_same_results(out: Path, reference: Path) -> None:
    """The same runs, predictions and scores as the reference (timings may differ), and nothing
    else in the task's folder (no lock, temporary or duplicate file)."""
    names = sorted(p.name for p in task_dir(out).iterdir())
    assert names == ["seed0.json", "seed1.json"], names
    for name in names:
        got, want = (results.FinetuneResult.from_disk(d / name) for d in (task_dir(out), task_dir(reference)))
        assert got.test.predictions == want.test.predictions
        assert got.test.metrics == want.test.metrics and got.main_score == want.main_score
        assert got.best_epoch == want.best_epoch and got.seed == want.seed
        assert [e["train_loss"] for e in got.dev.per_epoch] == pytest.approx([e["train_loss"] for e in want.dev.per_epoch], rel=1e-5)


@pytest.fixture(scope="module")
def serial(tiny_roberta_dir, data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serial")
    run_benchmark(str(tiny_roberta_dir), [TASK], seeds=2, results_dir=out, model_name="tiny", progress=False, **SETTINGS)
    return out


def test_local_units_get_their_own_devices():
    four = ["0", "1", "2", "3"]
    opts = ExecutorOptions(workers=2)
    assert [local_device_env(s, opts, gpus=four)["CUDA_VISIBLE_DEVICES"] for s in (0, 1)] == ["0,1", "2,3"]
    one_each = ExecutorOptions(workers=4, gpus_per_task=1)
    assert [local_device_env(s, one_each, gpus=four)["CUDA_VISIBLE_DEVICES"] for s in range(4)] == four
    with pytest.raises(ValueError, match="needs 8 GPUs; this machine shows 4"):
        local_device_env(0, ExecutorOptions(workers=4, gpus_per_task=2), gpus=four)
    # No GPU: each worker its own share of the cores, and as many threads.
    cpu = [local_device_env(s, opts, gpus=[], cores=[0, 1, 2, 3]) for s in (0, 1)]
    assert [e["BERTIN_BENCH_CPUS"] for e in cpu] == ["0,1", "2,3"] and cpu[0]["OMP_NUM_THREADS"] == "2"
    single = local_device_env(1, opts, gpus=[], cores=[0, 1])
    assert single["BERTIN_BENCH_CPUS"] == "1" and "intra_op_parallelism_threads=1" in single["XLA_FLAGS"]


@pytest.mark.slow
def test_ray_two_workers_write_what_a_serial_run_writes(serial, tiny_roberta_dir, tmp_path):
    ray = pytest.importorskip("ray", reason="the `ray` extra is not installed")
    from benchmark.leaderboard import build_leaderboard

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        out = tmp_path / "results"
        done = run_matrix([(str(tiny_roberta_dir), "tiny")], [TASK], seeds=2, results_dir=out,
                          executor=ExecutorOptions(kind="ray", workers=2, mem_per_cpu_gb=1), **SETTINGS)
    finally:
        ray.shutdown()
    assert len(done.units) == 2 and not done.submitted and len(done.results) == 2
    assert_same_results(out, serial)
    assert not (out / ".executor").exists()  # a complete pass leaves no executor state
    build_leaderboard(out, include_reported=False)  # from the files on disk only
    assert "(n=2)" in (out / "leaderboard.md").read_text()  # both seeds of the unit pair counted


def _env(**extra) -> dict:
    return {**os.environ, "BERTIN_DATA_DIR": str(paths.data_dir()), "HF_HUB_OFFLINE": "1", **extra}


@pytest.mark.slow
def test_slurm_array_through_the_fake_scheduler(serial, tiny_roberta_dir, tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    env = _env(PATH=f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}", FAKE_SLURM_QUEUE=str(queue))
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "bertin_bench.cli", "run", "-m", str(tiny_roberta_dir), *CLI, "--results-dir", str(out),
           "--executor", "slurm", "--workers", "2", "--gpus-per-task", "1", "--cpus-per-task", "2",
           "--slurm-partition", "gpu", "--slurm-time", "00:30:00"]
    said = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert said.returncode == 0, said.stderr[-3000:]
    assert "submitted 2 run(s) as one Slurm job array" in said.stdout and not task_dir(out).exists()
    [logs] = (out / ".executor").iterdir()
    script = (logs / "launch_script.slurm").read_text()
    for directive in ("--partition=gpu", "--time=00:30:00", "--array=0-1%2", "--gpus-per-task=1", "--cpus-per-task=2"):
        assert f"#SBATCH {directive}" in script
    assert run_queue(queue) == [2, 1]  # the 2-unit array, then datatrove's stats job
    assert_same_results(out, serial)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "submitted" not in again.stdout, again.stderr[-3000:]
    assert again.stderr.count("(done)") == 2 and len(list(queue.glob("*.json"))) == 2  # nothing resubmitted


@pytest.mark.slow
def test_a_killed_unit_is_redone_once(serial, tiny_roberta_dir, tmp_path):
    out = tmp_path / "results"
    args = ["run", "-m", tiny_roberta_dir, *CLI, "--results-dir", out, "--workers", "2"]
    proc = start_bench(*args, log=tmp_path / "killed.log")
    lock = task_dir(out) / ".seed0.lock"
    try:
        wait_for(lambda: lock.exists() and lock.read_text().strip().isdigit(), timeout=240, what="seed 0's unit")
        os.kill(int(lock.read_text()), signal.SIGKILL)  # the unit process holding seed 0
        assert proc.wait(timeout=120) == 1
    finally:
        kill_group(proc.pid)
    said = (tmp_path / "killed.log").read_text()
    assert re.search(r"unit\(s\) did not finish \(tiny ner_conll2002_es seed 0", said) and "Rerun" in said, said
    assert said.splitlines()[-1].startswith("Error: ") and not (task_dir(out) / "seed0.json").exists()
    again = start_bench(*args, log=tmp_path / "again.log")
    try:
        assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()
    finally:
        kill_group(again.pid)
    assert_same_results(out, serial)  # redone exactly as an uninterrupted run; no lock, no duplicate
    said = (tmp_path / "again.log").read_text()
    assert sum(line.startswith(f"{TASK} ") for line in said.splitlines()) == 2
    assert json.loads((task_dir(out) / "seed0.json").read_text())["seed"] == 0
