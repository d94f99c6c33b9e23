"""The Slurm executor end to end, on a simulated cluster.

There is no Slurm here, so ``fake_slurm/`` puts ``sbatch``, ``srun`` and ``scontrol`` on PATH:
``sbatch`` queues the batch script that datatrove writes, and the test then runs the queue as a
cluster would -- every array task in its own process, with ``SLURM_ARRAY_TASK_ID`` set, through
``srun launch_pickled_pipeline``. What is real: the sbatch script built from our CLI options, the
dill-pickled pipeline (scorer, strategy, writers) loaded in fresh processes, the rank arithmetic,
completion markers, the "incomplete" answer while jobs are queued and ``bench sample stats`` after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bertin_bench import paths
from tests.sampling.util import read_shards

FAKE_SLURM = Path(__file__).parent / "fake_slurm"

pytestmark = pytest.mark.skipif(shutil.which("launch_pickled_pipeline") is None,
                                reason="datatrove's launch_pickled_pipeline script is not on PATH")


def run_queue(queue: Path) -> list[int]:
    """Run the queued jobs in submission order, each array index in its own process; returns the
    number of array tasks of each job."""
    ran = []
    for job_file in sorted(queue.glob("*.json")):
        job = json.loads(job_file.read_text())
        indices = job["array"] if job["array"] is not None else [None]
        ran.append(len(indices))
        for index in indices:
            env = {**job["env"], "SLURM_JOB_ID": job["id"], "SLURM_NODELIST": "localhost"}
            if index is not None:
                env["SLURM_ARRAY_TASK_ID"] = str(index)
            res = subprocess.run(["bash", job["script"]], env=env, capture_output=True, text=True)
            assert res.returncode == 0, f"job {job['id']}[{index}] failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return ran


def bench(*args: str, env: dict) -> str:
    res = subprocess.run([sys.executable, "-m", "bertin_bench.cli", *args], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_slurm_array_run_matches_the_local_run(web_slice, kenlm_dir, tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    env = {**os.environ, "PATH": f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_QUEUE": str(queue),
           "BERTIN_DATA_DIR": str(paths.data_dir())}
    common = ["-i", str(web_slice(300)), "--lm-dir", str(kenlm_dir), "--mode", "ccnet",
              "--strategy", "gaussian", "--target-fraction", "0.3", "--seed", "5"]

    out = tmp_path / "slurm"
    said = bench("sample", "run", *common, "-o", str(out), "--tasks", "3", "--workers", "2", "--executor", "slurm",
                 "--slurm-partition", "cpu", "--slurm-time", "00:10:00", env=env)
    # Submitted, not run: the command says so and leaves stats for later.
    assert "0/3 tasks done" in said and "bench sample stats" in said
    assert not (out / "stats.json").exists()
    script = (out / "logs" / "launch_script.slurm").read_text()
    for directive in ("--partition=cpu", "--time=00:10:00", "--array=0-2%2", "--cpus-per-task=1", "--mem-per-cpu=2G"):
        assert f"#SBATCH {directive}" in script

    assert run_queue(queue) == [3, 1]  # our 3-task array, then datatrove's merge_stats job
    said = bench("sample", "stats", str(out), env=env)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["status"] == "complete" and stats["tasks"] == 3 and stats["seen"] == 300
    assert sorted(p.name for p in (out / "data").iterdir()) == ["00000.jsonl.gz", "00001.jsonl.gz", "00002.jsonl.gz"]

    local = tmp_path / "local"
    bench("sample", "run", *common, "-o", str(local), env=env)
    local_stats = json.loads((local / "stats.json").read_text())
    kept = sorted(r["text"] for r in read_shards(out))
    assert kept == sorted(r["text"] for r in read_shards(local))
    assert stats["kept"] == local_stats["kept"] == len(kept) and 60 < len(kept) < 120  # ~30% of 300
    assert stats["strategy"] == local_stats["strategy"]
