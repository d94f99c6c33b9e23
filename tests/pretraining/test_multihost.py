"""Multi-process pre-training, run for real on one machine.

``bench pretrain`` is launched as 2 processes that meet through ``jax.distributed.initialize`` at a
coordinator on a free 127.0.0.1 port, on the CPU backend with gloo collectives, 1 CPU device each;
the global batch of 16 is split 8 + 8. The reference is 1 process with 2 CPU devices
(``--xla_force_host_platform_device_count=2``): the same mesh of 2 devices and the same split of
the batch, so the only difference is who runs the 2-way gradient all-reduce (gloo between
processes, or XLA inside one). A sum of 2 terms does not depend on the order, so the trajectories
are expected to be bit-identical; the tolerance is 1e-6 relative (what the resume tests allow).

Data: 120 real documents of the web sample in 2 shards (40 held out, ~260 training blocks of 64
tokens), BERTIN's tokenizer, a model of hidden size 32, 20 steps: one epoch and a bit.

The fast tests (no subprocess) check the pieces: masking one process's rows equals masking the
whole batch, and the environment detection.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pretraining import distributed
from pretraining.data import BlockStream, MaskSpec, mask_tokens, process_batches, resolve_files, train_batches
from pretraining.train import read_metrics

from .helpers import make_shards, tiny_overrides

REPO = Path(__file__).resolve().parents[2]
STEPS, BATCH, SEQ = 20, 16, 64
CKPT_EVERY, RESUME_FROM = 4, 16

# Both kinds of process go through the real entry point (``bertin_bench.cli:main``). Test-only
# instruments, set by environment variables, watch it from outside:
# - BERTIN_TEST_READONLY=DIR: any write into DIR (open for writing, mkdir, rename, remove) raises,
#   via a Python audit hook: a process that tried to write the run directory would fail;
# - BERTIN_TEST_SLOW_PUBLISH=NAME: sleep 3 s before renaming anything into NAME (process 0 is slow
#   to publish its last checkpoint, so a process that did not wait for it would finish first);
# - BERTIN_TEST_DONE=FILE: the time at which main() returned (before JAX's shutdown at exit).
LAUNCHER = textwrap.dedent("""
    import os, sys, time

    readonly = os.environ.get("BERTIN_TEST_READONLY")
    slow = os.environ.get("BERTIN_TEST_SLOW_PUBLISH")

    def inside(path):
        try:
            return os.path.abspath(os.fsdecode(path)).startswith(readonly)
        except TypeError:  # a file descriptor
            return False

    def hook(event, args):
        if readonly:
            writing = ((event == "open" and isinstance(args[1], str) and any(c in args[1] for c in "wax+"))
                       or (event == "open" and args[1] is None and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
                       or event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.rename"))
            if writing and inside(args[0]) or (event == "os.rename" and inside(args[1])):
                raise PermissionError(f"process {os.environ.get('BERTIN_TEST_ID')} wrote {event} {args[:2]}")
        if slow and event == "os.rename" and os.fsdecode(args[1]).endswith(slow):
            time.sleep(3)

    sys.addaudithook(hook)
    from bertin_bench.cli import main
    try:
        main()
    finally:
        if os.environ.get("BERTIN_TEST_DONE"):
            with open(os.environ["BERTIN_TEST_DONE"], "w") as f:
                f.write(repr(time.time()))
""")


# ----------------------------------------------------------------------------- fast: the pieces

@pytest.fixture(scope="module")
def mh_shards(web_sample, tmp_path_factory):
    return make_shards(web_sample, tmp_path_factory.mktemp("mh_shards"), n_docs=120, n_shards=2)


@pytest.fixture(scope="module")
def bertin_dir(data_dir):
    path = data_dir / "tokenizers" / "bertin-roberta-base-spanish"
    if not path.is_dir():
        pytest.skip(f"{path} is missing from the data directory")
    return path


def _stream(shards, tokenizer_dir):
    from pretraining.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    stream = BlockStream(resolve_files(shards), tok, SEQ, eval_docs=40, shuffle_buffer_blocks=64)
    return stream, MaskSpec.from_tokenizer(tok)


def test_each_process_masks_its_rows_exactly_like_the_whole_batch(mh_shards, bertin_dir):
    stream, spec = _stream(mh_shards, bertin_dir)
    whole = list(zip(range(3), train_batches(stream, BATCH, spec, seed=3)))
    halves = [list(zip(range(3), process_batches(stream, BATCH, spec, seed=3, rows=r)))
              for r in (slice(0, BATCH // 2), slice(BATCH // 2, BATCH))]
    for (_, (step, batch, pos)), (_, a), (_, b) in zip(whole, *halves):
        assert a.step == b.step == step and a.position == b.position == pos
        assert a.tokens == b.tokens == int(batch["attention_mask"].sum())
        for key, value in batch.items():
            np.testing.assert_array_equal(np.concatenate([a.arrays[key], b.arrays[key]]), value, err_msg=key)
        assert not set(a.blocks) & set(b.blocks) and len(a.blocks) == len(b.blocks) == BATCH // 2
    # The rows really are different data (the test could fail): row masks of one half differ.
    assert not np.array_equal(whole[0][1][1]["input_ids"][:8], whole[0][1][1]["input_ids"][8:])
    rows = np.random.default_rng(0).integers(5, 1000, size=(6, SEQ)).astype(np.int32)
    full = mask_tokens(rows, np.random.default_rng(1), spec)
    part = mask_tokens(rows, np.random.default_rng(1), spec, rows=slice(2, 5))
    for key in full:
        np.testing.assert_array_equal(part[key], full[key][2:5], err_msg=key)


def test_the_multi_process_environment_is_detected():
    assert distributed.detect(env={}) is None
    assert distributed.detect(env={"SLURM_NTASKS": "1", "SLURM_STEP_NODELIST": "n1"}) is None  # one task
    assert distributed.detect(env={"SLURM_NTASKS": "4", "SLURM_STEP_NODELIST": "n[1-2]"}).source == "slurm"
    assert distributed.detect(env={"SLURM_NTASKS": "4"}) is None  # sbatch's shell, not an srun step
    assert distributed.detect(env={"OMPI_COMM_WORLD_SIZE": "2"}).source == "openmpi"
    spec = distributed.detect("10.0.0.1:1234", 2, 1, env={"SLURM_NTASKS": "4", "SLURM_STEP_NODELIST": "n1"})
    assert (spec.source, spec.coordinator, spec.num_processes, spec.process_id) == ("explicit", "10.0.0.1:1234", 2, 1)
    env = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}
    assert distributed.detect(env=env) == distributed.ClusterSpec("environment", "h:1", 2, 0)
    assert distributed.detect("auto", env={}).source == "auto"
    with pytest.raises(ValueError, match="missing --num-processes, --process-id"):
        distributed.detect("10.0.0.1:1234", env={})
    with pytest.raises(ValueError, match="HOST:PORT"):
        distributed.detect("10.0.0.1", 2, 0, env={})
    with pytest.raises(ValueError, match=r"process id 2 must be in 0\.\.1"):
        distributed.detect("h:1", 2, 2, env={})


# ----------------------------------------------------------------------------- launching real processes

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_slurm_port() -> tuple[int, int]:
    """A free port JAX's Slurm detection can be sent to (it takes the port from the job id, in
    61440..65535, unless JAX_COORDINATOR_PORT says otherwise: we set both) and that job id."""
    for port in range(61440 + os.getpid() % 4000, 65536):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port, port - 61440
    raise RuntimeError("no free port in 61440..65535")


class Job:
    """``n`` processes of ``bench pretrain``, outputs in ``logs/``. With ``n`` > 1 each process is
    told its place by flags (``--coordinator/--num-processes/--process-id``) or, ``slurm=True``, by
    the variables ``srun`` sets for each task of a step (no flags: the Slurm detection path)."""

    def __init__(self, tmp: Path, name: str, run: Path, n: int, overrides: list[str], *, resume=False,
                 devices: int = 1, verbose: str = "-v", slurm: bool = False, per_process_env=None):
        self.logs = tmp / f"{name}_logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        launcher = tmp / "launcher.py"
        launcher.write_text(LAUNCHER)
        port, job_id = _free_slurm_port() if slurm else (_free_port(), None)
        base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS" and not k.startswith("SLURM_")}
        base.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
        if devices > 1:
            base["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        self.procs = []
        for i in range(n):
            cmd = [sys.executable, str(launcher), verbose, "pretrain", "--config", "tiny", *overrides,
                   "--out", str(run)] + (["--resume"] if resume else [])
            penv = dict(base, BERTIN_TEST_ID=str(i), **((per_process_env or {}).get(i, {})))
            if n > 1 and slurm:
                penv.update(SLURM_JOB_ID=str(job_id), SLURM_STEP_NODELIST="localhost", SLURM_NTASKS=str(n),
                            SLURM_PROCID=str(i), SLURM_LOCALID=str(i), JAX_COORDINATOR_PORT=str(port))
            elif n > 1:
                cmd += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n), "--process-id", str(i)]
            out, err = open(self.logs / f"{i}.out", "w"), open(self.logs / f"{i}.err", "w")
            self.procs.append(subprocess.Popen(cmd, cwd=REPO, env=penv, stdout=out, stderr=err))
            out.close(), err.close()

    def wait(self, timeout: float = 900) -> list[int]:
        deadline = time.time() + timeout
        try:
            return [p.wait(timeout=max(1.0, deadline - time.time())) for p in self.procs]
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the job did not finish in {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def err(self, i: int) -> str:
        return (self.logs / f"{i}.err").read_text(errors="replace")

    def out(self, i: int) -> str:
        return (self.logs / f"{i}.out").read_text(errors="replace")

    def tail(self) -> str:
        return "\n".join(f"--- process {i} ---\n{self.err(i)[-3000:]}" for i in range(len(self.procs)))

    def check(self, timeout: float = 900) -> None:
        codes = self.wait(timeout)
        assert codes == [0] * len(codes), f"exit codes {codes}\n{self.tail()}"


def _overrides(shards: Path, tokenizer: Path, *extra: str) -> list[str]:
    return [o for o in tiny_overrides(shards, Path("unused"), str(tokenizer)) if not o.startswith("out_dir=")] + [
        f"training.batch_size={BATCH}", f"training.max_steps={STEPS}", f"checkpointing.every_steps={CKPT_EVERY}",
        "checkpointing.keep_last=2", "logging.eval_every=10", *extra]


def _losses(run: Path, key: str = "loss") -> dict[int, float]:
    return {r["step"]: r[key] for r in read_metrics(run) if key in r}


def _cut_after(src: Path, dst: Path, step: int) -> Path:
    """A copy of a finished run as if it had been killed right after the checkpoint of ``step``."""
    shutil.copytree(src, dst)
    for d in (dst / "checkpoints").iterdir():
        if int(d.name.split("_")[1]) > step:
            shutil.rmtree(d)
    (dst / "summary.json").unlink()
    return dst


@pytest.fixture(scope="module")
def runs(mh_shards, bertin_dir, tmp_path_factory):
    """The 1-process reference (2 devices) and the 2-process run, launched together.

    In the 2-process run process 1 may not write into the run directory at all (a write raises),
    process 0 is 3 s slow to publish its last checkpoint, and the block ids of every step are
    logged (``-vv``)."""
    tmp = tmp_path_factory.mktemp("multihost")
    overrides = _overrides(mh_shards, bertin_dir)
    ref_run, two_run = tmp / "ref", tmp / "two"
    ref = Job(tmp, "ref", ref_run, 1, overrides, devices=2)
    two = Job(tmp, "two", two_run, 2, overrides, verbose="-vv", per_process_env={
        0: {"BERTIN_TEST_SLOW_PUBLISH": f"step_{STEPS:08d}", "BERTIN_TEST_DONE": str(tmp / "done0")},
        1: {"BERTIN_TEST_READONLY": str(two_run.resolve()), "BERTIN_TEST_DONE": str(tmp / "done1")}})
    ref.check()
    two.check()
    return {"tmp": tmp, "ref": ref_run, "two": two_run, "ref_job": ref, "two_job": two, "overrides": overrides}


@pytest.mark.slow
def test_two_processes_follow_the_one_process_loss_trajectory(runs):
    ref, two = _losses(runs["ref"]), _losses(runs["two"])
    assert sorted(two) == list(range(1, STEPS + 1)) and sorted(ref) == sorted(two)
    np.testing.assert_allclose([two[s] for s in sorted(two)], [ref[s] for s in sorted(ref)], rtol=1e-6)
    np.testing.assert_allclose(list(_losses(runs["two"], "eval_loss").values()),
                               list(_losses(runs["ref"], "eval_loss").values()), rtol=1e-6)
    assert ref[STEPS] < ref[1] - 0.5  # it learned something: equal trajectories are not two flat lines
    s_ref = json.loads((runs["ref"] / "summary.json").read_text())
    s_two = json.loads((runs["two"] / "summary.json").read_text())
    assert s_two["tokens_seen"] == s_ref["tokens_seen"] == STEPS * BATCH * SEQ  # global tokens, not one host's
    # The topology is logged at start by each process.
    for i in (0, 1):
        assert (f"topology: process {i} of 2: 1 local / 2 global cpu device(s); global batch {BATCH}, "
                f"this process feeds rows {8 * i}:{8 * i + 8}") in runs["two_job"].err(i)
    assert "process 0 of 1: 2 local / 2 global cpu device(s)" in runs["ref_job"].err(0)


def _block_ids(job: Job, i: int) -> dict[int, list[tuple]]:
    ids = {}
    for line in job.err(i).splitlines():
        if "pretraining.train.blocks DEBUG" in line:
            rest = line.split(f"process {i} step ", 1)[1]
            step, blocks = rest.split(" blocks ", 1)
            ids[int(step)] = [tuple(b) for b in json.loads(blocks)]
    return ids


@pytest.mark.slow
def test_each_process_trains_on_its_own_blocks_and_an_epoch_once(runs, mh_shards, bertin_dir):
    stream, _ = _stream(mh_shards, bertin_dir)
    epoch0 = []
    for _, pos in stream.train_blocks():
        if pos.epoch > 0:
            break
        epoch0.append((pos.epoch, pos.file_pos, pos.line, pos.block - 1))
    assert len(epoch0) <= STEPS * BATCH, "the test needs a corpus the 20 steps go through entirely"
    p0, p1 = _block_ids(runs["two_job"], 0), _block_ids(runs["two_job"], 1)
    assert sorted(p0) == sorted(p1) == list(range(1, STEPS + 1))
    for step in p0:
        assert len(p0[step]) == len(p1[step]) == BATCH // 2
        assert not set(p0[step]) & set(p1[step]), f"step {step}: a block went to both processes"
    consumed = [b for s in sorted(p0) for b in p0[s] + p1[s]]
    assert len(consumed) == len(set(consumed)), "a block was trained on twice"
    assert sorted(b for b in consumed if b[0] == 0) == sorted(epoch0)  # epoch 0: every block exactly once
    assert any(b[0] == 1 for b in consumed)  # and the run went on into epoch 1


@pytest.mark.slow
def test_only_process_0_writes_and_the_others_wait_for_it(runs):
    two = runs["two"]
    # Process 1 ran with every write into the run directory forbidden, and finished cleanly.
    assert "PermissionError" not in runs["two_job"].err(1)
    assert sorted(d.name for d in (two / "checkpoints").iterdir()) == [f"step_{RESUME_FROM:08d}", f"step_{STEPS:08d}"]
    assert [r["step"] for r in read_metrics(two) if "loss" in r] == list(range(1, STEPS + 1))  # one writer
    assert sorted(p.name for p in two.iterdir()) == ["checkpoints", "config.yaml", "loss_curve.png",
                                                     "metrics.jsonl", "summary.json"]
    assert '"steps"' not in runs["two_job"].out(1)  # the summary is printed once, by process 0
    out0 = runs["two_job"].out(0)  # (gloo prints a line of its own first)
    assert json.loads(out0[out0.index("{"):])["steps"] == STEPS
    # Process 0 took 3 s to publish its last checkpoint: process 1 returned only after it.
    published = (two / "checkpoints" / f"step_{STEPS:08d}").stat().st_mtime
    assert float((runs["tmp"] / "done1").read_text()) >= published - 0.05


@pytest.mark.slow
def test_a_checkpoint_resumes_across_process_counts(runs):
    """2 -> 1 (one device) and 1 -> 2: the loss of the next step is the uninterrupted run's. The
    2 processes find each other from Slurm's variables this time (what ``srun`` sets per task)."""
    tmp = runs["tmp"]
    from_two = _cut_after(runs["two"], tmp / "from_two", RESUME_FROM)
    from_one = _cut_after(runs["ref"], tmp / "from_one", RESUME_FROM)
    one = Job(tmp, "resume1", from_two, 1, runs["overrides"], resume=True)  # 1 process, 1 device
    two = Job(tmp, "resume2", from_one, 2, runs["overrides"], resume=True, slurm=True)
    one.check()
    two.check()
    ref = _losses(runs["ref"])
    assert "joining a multi-process job (slurm)" in two.err(1)
    for run, job in ((from_two, one), (from_one, two)):
        assert f"resuming from {run / 'checkpoints' / f'step_{RESUME_FROM:08d}'}" in job.err(0)
        got = _losses(run)
        assert sorted(got) == list(range(1, STEPS + 1))  # the log was cut at step 16 and continued
        # 1 device sums the 16 rows itself instead of 2 x 8: float32 rounding, hence 1e-5.
        np.testing.assert_allclose([got[s] for s in range(RESUME_FROM + 1, STEPS + 1)],
                                   [ref[s] for s in range(RESUME_FROM + 1, STEPS + 1)], rtol=1e-5)
        assert json.loads((run / "summary.json").read_text())["tokens_seen"] == STEPS * BATCH * SEQ


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0], ids=["worker-killed", "coordinator-killed"])
def test_a_killed_process_fails_the_job_quickly_and_clearly(victim, mh_shards, bertin_dir, tmp_path):
    run = tmp_path / "run"
    job = Job(tmp_path, "kill", run, 2, _overrides(mh_shards, bertin_dir, "training.max_steps=100000"))
    try:
        deadline = time.time() + 600
        while not (run / "checkpoints" / f"step_{CKPT_EVERY:08d}").exists():  # mid-run, past a checkpoint
            assert time.time() < deadline and all(p.poll() is None for p in job.procs), job.tail()
            time.sleep(0.2)
        os.kill(job.procs[victim].pid, signal.SIGKILL)
        killed_at = time.time()
        survivor = job.procs[1 - victim]
        code = survivor.wait(timeout=60)  # no hang: a dead peer ends the job within a minute
        elapsed = time.time() - killed_at
    finally:
        job.kill()
    err = job.err(1 - victim)
    assert code != 0, err[-3000:]
    assert elapsed < 60
    if victim == 1:  # the coordinator's process reports it in one line, naming what to resume from
        assert code == 1
        assert "Error: process 0 of 2: lost contact with another process of the job" in err, err[-3000:]
        assert "resume from" in err and "with --resume" in err
    else:  # the coordinator is gone: either our message or JAX's own fatal error, never a hang
        assert ("lost contact with another process" in err
                or "JAX distributed service detected fatal errors" in err), err[-3000:]
