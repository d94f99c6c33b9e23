"""`bench pretrain` killed mid-run (the main process only, or its whole group), then resumed: the
resumed run ends exactly where an uninterrupted one does, no process is left behind, and no
half-written checkpoint is visible."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.faults.conftest import bench, group_members, kill_group, start_bench, wait_for, wait_group_gone

pytestmark = [pytest.mark.faults, pytest.mark.slow]

STEPS = 8
SETTINGS = ["model.hidden_size=32", "model.intermediate_size=64", "model.num_hidden_layers=1",
            "training.batch_size=4", f"training.max_steps={STEPS}", "schedule.warmup_steps=1",
            "logging.log_every=1", "logging.eval_every=4", "checkpointing.every_steps=2", "data.eval_docs=20",
            "data.eval_blocks=4", "logging.progress=false"]


def _args(web_docs, tokenizer, out):
    return ["pretrain", "--config", "tiny", "--out", out, f"data.train_files=[{web_docs(400)}]",
            f"tokenizer.path={tokenizer}", *SETTINGS]


def _final(out) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def reference(web_docs, bertin_tokenizer_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain_ref") / "run"
    res = bench(*_args(web_docs, bertin_tokenizer_dir, out), timeout=600)
    assert res.returncode == 0, res.output
    return _final(out)


def test_kill_then_resume_ends_where_an_uninterrupted_run_does(web_docs, bertin_tokenizer_dir, reference, tmp_path):
    """SIGKILL of the main process. `bench pretrain` is one process (the input pipeline is a thread),
    so this is also the whole group: the check that nothing of the group survives covers both."""
    out = tmp_path / "run"
    proc = start_bench(*_args(web_docs, bertin_tokenizer_dir, out), log=tmp_path / "log")
    try:
        # kill as soon as the first checkpoint is published (mid-run, with work still to do)
        wait_for(lambda: (out / "checkpoints" / "step_00000002" / "metadata.json").exists(), timeout=300,
                 what="the first checkpoint")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_group_gone(proc.pid) == [], f"left behind: {group_members(proc.pid)}"
    finally:
        kill_group(proc.pid)
    # nothing half-written is visible: only complete step_* directories
    for d in (out / "checkpoints").iterdir():
        assert not d.name.startswith("step_") or (d / "metadata.json").exists(), d
    res = bench(*_args(web_docs, bertin_tokenizer_dir, out), "--resume", timeout=600)
    assert res.returncode == 0, res.output
    final = _final(out)
    assert final["steps"] == reference["steps"] == STEPS
    assert final["tokens_seen"] == reference["tokens_seen"]
    assert final["final_eval_loss"] == pytest.approx(reference["final_eval_loss"], abs=1e-5)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, STEPS + 1))  # none lost, none twice
