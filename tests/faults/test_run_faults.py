"""Faults against the real ``bench run`` on a tiny model and slices of the real data: a kill of the
main process or of its whole group, then a rerun; two concurrent runs on one results directory;
invalid settings; a results directory holding a truncated, a binary and another schema's file.

Each asserts what the user gets: the exit code, a message naming the thing, every run done exactly
once (one result per seed, the same score as an uninterrupted run, no lock or temporary file left),
no process of the run left alive."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from tests.faults.conftest import bench, group_members, kill_group, start_bench, wait_for, wait_group_gone

pytestmark = pytest.mark.faults

TASK = "ner_conll2002_es"


def run_args(model, out, seeds=2, limit_train=64, *extra):
    return ["run", "-m", model, "--model-name", "tiny", "-t", TASK, "--seeds", seeds, "--results-dir", out,
            "--limit-train", limit_train, "--limit-eval", 32, "--epochs", 2, "--set", "max_length=32",
            "--lr", "1e-3", "--no-progress", *extra]


def task_dir(out):
    return out / "runs" / "tiny" / TASK


def leftovers(out) -> list[str]:
    """Anything in the task's folder that is not a finished result (lock, temporary file)."""
    return sorted(p.name for p in task_dir(out).iterdir() if not re.fullmatch(r"seed\d+\.json", p.name))


def scores(out) -> dict[str, float]:
    return {p.name: json.loads(p.read_text())["main_score"] for p in sorted(task_dir(out).glob("seed*.json"))}


@pytest.fixture(scope="module")
def reference(tiny_roberta_dir, data_dir, tmp_path_factory):
    """An uninterrupted run: what every faulted run must end up with."""
    out = tmp_path_factory.mktemp("reference")
    res = bench(*run_args(tiny_roberta_dir, out), timeout=300)
    assert res.returncode == 0, res.output
    assert len(scores(out)) == 2 and leftovers(out) == []
    return scores(out)


@pytest.mark.parametrize("target", ["main", "group"])
def test_kill_then_rerun_redoes_the_run_once(tiny_roberta_dir, reference, tmp_path, target):
    out = tmp_path / "results"
    proc = start_bench(*run_args(tiny_roberta_dir, out), log=tmp_path / "killed.log")
    try:
        wait_for(lambda: (task_dir(out) / ".seed0.lock").exists(), timeout=180, what="fine-tuning of seed 0")
        os.kill(proc.pid, signal.SIGKILL) if target == "main" else os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_group_gone(proc.pid) == [], "a process of the killed run is still alive"
    finally:
        kill_group(proc.pid)
    assert not (task_dir(out) / "seed0.json").exists()  # never a partial result
    again = bench(*run_args(tiny_roberta_dir, out), timeout=300)
    assert again.returncode == 0, again.output
    assert scores(out) == reference  # the killed run redone, exactly as an uninterrupted one
    assert leftovers(out) == []  # the lock the killed run held was taken over and removed


def test_two_concurrent_runs_do_each_run_once(tiny_roberta_dir, reference, tmp_path):
    out = tmp_path / "results"
    procs = [start_bench(*run_args(tiny_roberta_dir, out), log=tmp_path / f"run{i}.log") for i in range(2)]
    try:
        for proc in procs:
            assert proc.wait(timeout=300) == 0, (tmp_path / f"run{procs.index(proc)}.log").read_text()
    finally:
        for proc in procs:
            kill_group(proc.pid)
    logs = [(tmp_path / f"run{i}.log").read_text() for i in range(2)]
    for seed in (0, 1):
        path = task_dir(out) / f"seed{seed}.json"
        skipped = [f"skip {path} (" in log for log in logs]
        assert skipped.count(False) == 1, logs  # one process ran it, the other skipped it (held or done)
    assert scores(out) == reference and leftovers(out) == []
    assert all(group_members(p.pid) == [] for p in procs)


def test_invalid_settings_fail_at_once_naming_the_key(tiny_roberta_dir, tmp_path):
    out = tmp_path / "results"
    for extra, message in ((["--set", "warmup_ratio=-1"], "--set warmup_ratio=-1: must be >= 0.0"),
                           (["--set", "batch_size=0"], "--set batch_size=0: must be >= 1"),
                           (["--set", "learning_rate=abc"], "--set learning_rate=abc: expected a number"),
                           (["--set", "dropout=0.1"], "unknown hyperparameter 'dropout'")):
        res = bench(*run_args(tiny_roberta_dir, out, 1, 64, *extra), timeout=60)
        assert res.returncode == 1 and message in res.output and "Traceback" not in res.output, res.output
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for name in ("config.json", "flax_model.msgpack"):
        (no_tok / name).write_bytes((tiny_roberta_dir / name).read_bytes())
    res = bench(*run_args(no_tok, out, 1), timeout=60)
    assert res.returncode == 1 and f"{no_tok}: no tokenizer files" in res.output and "Traceback" not in res.output
    assert not out.exists() or not any(out.rglob("seed*.json"))


@pytest.mark.parametrize("content, message", [
    (b'{"schema_version": 2, "kind": "bertin-bench/finetune-result", "model": {', r"seed0.json:1: invalid JSON"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", r"seed0.json: .*(codec|decode|UTF-8|utf-8)"),
    (json.dumps({"schema_version": 7, "kind": "someone-else/result", "score": 0.9}).encode(), r"seed0.json"),
], ids=["truncated", "binary", "other-schema"])
def test_unreadable_result_in_the_results_dir_is_named(tiny_roberta_dir, tmp_path, content, message):
    out = tmp_path / "results"
    task_dir(out).mkdir(parents=True)
    (task_dir(out) / "seed0.json").write_bytes(content)
    res = bench(*run_args(tiny_roberta_dir, out, 1), timeout=120)
    assert res.returncode == 1 and re.search(message, res.output) and "--force" in res.output, res.output
    assert "Traceback" not in res.output
    assert (task_dir(out) / "seed0.json").read_bytes() == content  # left as it was
