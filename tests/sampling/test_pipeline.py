"""The datatrove pipeline on real documents: flat scored shards, identical kept sets whatever the
order / task count / interruption, stats, reuse of stored perplexities."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sampling.boundaries import estimate_boundaries
from sampling.options import SampleError
from sampling.steps import keep_uniform
from tests.sampling.util import read_shards, sample, score

N = 1200


@pytest.fixture(scope="module")
def boundaries(web_slice, ccnet_scorer):
    return estimate_boundaries(web_slice(N), scorer=ccnet_scorer, n_docs=N, progress=False)


@pytest.fixture(scope="module")
def scored(web_slice, ccnet_scorer, tmp_path_factory):
    out = tmp_path_factory.mktemp("scored")
    stats = score(web_slice(N), out, scorer=ccnet_scorer, tasks=2, workers=2)
    return out, stats


def kept_texts(out: Path) -> list[str]:
    return sorted(r["text"] for r in read_shards(out))


def counts(stats: dict) -> dict:
    """Per-source (seen, kept): integers, unlike the float sums whose last bit depends on sharding."""
    return {src: (g["seen"], g["kept"]) for src, g in stats["by_source"].items()}


def test_score_writes_flat_records_with_every_field(scored, web_slice, ccnet_scorer):
    out, stats = scored
    inputs = [json.loads(line) for line in web_slice(N).read_text().splitlines()]
    records = read_shards(out)
    assert sorted(p.name for p in (out / "data").iterdir()) == ["00000.jsonl.gz", "00001.jsonl.gz"]
    assert len(records) == N and stats["seen"] == N and stats["kept"] == N and stats["skipped_total"] == 0
    by_text = {r["text"]: r for r in records}
    for rec in inputs[:50]:
        got = by_text[rec["text"]]
        assert list(got) == [*rec.keys(), "perplexity"]  # every input field, flat, then perplexity
        assert {k: got[k] for k in rec} == rec
        assert got["perplexity"] == ccnet_scorer.perplexity(rec["text"])
    assert json.loads((out / "scorer.json").read_text())["mode"] == "ccnet"
    assert set(stats["by_source"]) >= {"news_un", "tweet"}


def test_same_kept_set_for_shuffled_input_and_task_counts(web_slice, ccnet_scorer, boundaries, tmp_path):
    lines = web_slice(N).read_text().splitlines(keepends=True)
    random.Random(0).shuffle(lines)
    shuffled = tmp_path / "shuffled.jsonl.gz"
    with gzip.open(shuffled, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    common = dict(strategy="gaussian", boundaries=boundaries, target_fraction=0.3, scorer=ccnet_scorer, seed=7)
    one = sample(web_slice(N), tmp_path / "one", tasks=1, **common)
    two = sample(web_slice(N), tmp_path / "two", tasks=2, workers=2, **common)
    shuf = sample(shuffled, tmp_path / "shuf", tasks=3, workers=1, **common)
    assert 0 < one["kept"] < N
    assert kept_texts(tmp_path / "one") == kept_texts(tmp_path / "two") == kept_texts(tmp_path / "shuf")
    assert one["kept"] == two["kept"] == shuf["kept"] and counts(one) == counts(two) == counts(shuf)
    assert len(list((tmp_path / "shuf" / "data").glob("*.jsonl.gz"))) == 3
    # another seed keeps another set
    other = sample(web_slice(N), tmp_path / "seed8", **{**common, "seed": 8})
    assert kept_texts(tmp_path / "seed8") != kept_texts(tmp_path / "one") and other["kept"] > 0


def test_keep_decision_depends_only_on_seed_key_perplexity():
    u = keep_uniform(0, "hola", 123.4)
    assert u == keep_uniform(0, "hola", 123.4) and 0 <= u < 1
    assert len({keep_uniform(s, "hola", 123.4) for s in range(50)}) == 50
    assert keep_uniform(0, "hola", 123.5) != u


def test_run_reuses_stored_perplexity_and_reports_stats(scored, ccnet_scorer, boundaries, tmp_path):
    out, _ = scored
    stats = sample(out, tmp_path / "s", strategy="stepwise", boundaries=boundaries, target_fraction=0.3,
                       scorer=ccnet_scorer)
    assert stats["reused_stored_perplexity"] is True
    task_stats = json.loads((tmp_path / "s" / "logs" / "stats" / "00000.json").read_text())
    scorer_step = next(s for s in task_stats if s["name"].endswith("📈 perplexity"))
    assert scorer_step["stats"]["reused"] == N and "scored" not in scorer_step["stats"]
    assert abs(stats["kept_fraction"] - 0.3) < 0.05  # 1,200 docs: binomial noise ~1.3 points
    assert stats["expected_fraction"] == pytest.approx(stats["target"]["fraction"], abs=0.03)
    assert set(stats["by_quartile"]) == {"Q1", "Q2", "Q3", "Q4"}
    assert sum(q["seen"] for q in stats["by_quartile"].values()) == N
    assert stats["by_source"]["tweet"]["keep_rate"] < stats["by_source"]["news_un"]["keep_rate"]
    assert stats["tokens_kept"] == sum(len(r["text"].split()) for r in read_shards(tmp_path / "s"))
    assert (tmp_path / "s" / "perplexity_hist.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "s" / "boundaries.json").read_text())["q2"] == boundaries.q2


def test_rerun_with_another_config_is_refused(web_slice, ccnet_scorer, boundaries, tmp_path):
    sample(web_slice(200), tmp_path / "o", strategy="random", factor=0.5, scorer=ccnet_scorer)
    again = sample(web_slice(200), tmp_path / "o", strategy="random", factor=0.5, scorer=ccnet_scorer)
    assert again["kept"] > 0  # same config: completed tasks are skipped, stats rebuilt from disk
    with pytest.raises(SampleError, match="another configuration.*strategy"):
        sample(web_slice(200), tmp_path / "o", strategy="random", factor=0.4, scorer=ccnet_scorer)


def test_target_docs(web_slice, ccnet_scorer, boundaries, tmp_path):
    stats = sample(web_slice(N), tmp_path / "o", strategy="gaussian", boundaries=boundaries,
                       target_docs=400, scorer=ccnet_scorer)
    assert stats["target"]["input_records"] == N and stats["expected_kept"] == pytest.approx(400, rel=0.03)


@pytest.mark.parametrize("strategy", ["random", "gaussian", "stepwise"])
def test_target_tokens(web_slice, ccnet_scorer, boundaries, tmp_path, strategy):
    """--target-tokens calibrates on word-weighted perplexities: the kept words, not the kept
    documents, hit the target (documents differ in length, and the strategies prefer some lengths)."""
    words = sum(len(json.loads(line)["text"].split()) for line in web_slice(N).read_text().splitlines())
    target = words // 4
    stats = sample(web_slice(N), tmp_path / "o", strategy=strategy, boundaries=boundaries,
                       target_tokens=target, scorer=ccnet_scorer)
    assert stats["target"]["input_words"] == words == stats["words_seen"]
    # the calibration sample is the whole input here, so the expectation is exact up to bisection
    assert stats["expected_tokens_kept"] == pytest.approx(target, rel=0.02)
    assert stats["tokens_kept"] == pytest.approx(target, rel=0.15 if strategy != "random" else 0.08)
    if strategy == "gaussian":  # the document-count target gives a different factor: long docs are typical
        by_docs = sample(web_slice(N), tmp_path / "d", strategy=strategy, boundaries=boundaries,
                             target_fraction=0.25, scorer=ccnet_scorer)
        assert by_docs["strategy"]["factor"] != stats["strategy"]["factor"]
    with pytest.raises(SampleError, match="not --target-docs and --target-tokens"):
        sample(web_slice(N), tmp_path / "x", strategy=strategy, boundaries=boundaries, target_docs=3,
                   target_tokens=3, scorer=ccnet_scorer)


def test_crashed_task_is_rerun_and_output_identical(web_slice, ccnet_scorer, boundaries, tmp_path):
    """Simulate a task that died mid-way: no completion marker, a garbage partial shard, a
    stale stats file. Rerunning the same call redoes that task only and matches a clean run."""
    common = dict(strategy="gaussian", boundaries=boundaries, target_fraction=0.3, scorer=ccnet_scorer, tasks=2)
    clean = sample(web_slice(N), tmp_path / "clean", **common)
    out = tmp_path / "crash"
    sample(web_slice(N), out, **common)
    (out / "logs" / "completions" / "00001").unlink()
    (out / "data" / "00001.jsonl.gz").rename(out / "data" / ".00001.jsonl.gz.partial")
    with gzip.open(out / "data" / ".00001.jsonl.gz.partial", "ab") as f:
        f.write(b'{"text": "half a rec')
    done_before = (out / "data" / "00000.jsonl.gz").stat().st_mtime_ns
    resumed = sample(web_slice(N), out, **common)
    assert (out / "data" / "00000.jsonl.gz").stat().st_mtime_ns == done_before  # task 0 not redone
    assert not list((out / "data").glob(".*partial"))
    assert read_shards(out) == read_shards(tmp_path / "clean")
    assert resumed["kept"] == clean["kept"] and counts(resumed) == counts(clean)


def test_killed_cli_run_resumes_to_identical_output(web_slice, boundaries, tmp_path, kenlm_dir):
    """Kill `bench sample run` (SIGKILL) after its first task finished, rerun the same command."""
    bfile = tmp_path / "b.json"
    boundaries.save(bfile)
    cmd = [sys.executable, "-m", "bertin_bench.cli", "sample", "run", "-i", str(web_slice(N)), "--strategy",
           "stepwise", "--boundaries", str(bfile), "--target-fraction", "0.3", "--tasks", "6", "--workers", "1",
           "--lm-dir", str(kenlm_dir)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "-o", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    marker = out / "logs" / "completions" / "00000"
    deadline = time.time() + 60
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in (out / "logs" / "completions").iterdir())
    assert "00000" in done and len(done) < 6, f"not killed mid-way: {done}"
    assert not (out / "stats.json").exists()

    for target in (out, tmp_path / "clean"):
        res = subprocess.run([*cmd, "-o", str(target)], env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
    assert read_shards(out) == read_shards(tmp_path / "clean")
    a, b = (json.loads((d / "stats.json").read_text()) for d in (out, tmp_path / "clean"))
    assert (a["seen"], a["kept"], counts(a)) == (b["seen"], b["kept"], counts(b))


def test_random_target_needs_no_boundaries(web_slice, ccnet_scorer, tmp_path):
    stats = sample(web_slice(200), tmp_path / "o", strategy="random", target_fraction=0.5, scorer=ccnet_scorer)
    assert stats["strategy"] == {"name": "random", "factor": 0.5}
    assert not (tmp_path / "o" / "boundaries.json").exists() and stats["by_quartile"] == {}
    assert 0.38 < stats["kept_fraction"] < 0.62  # 200 documents, p = 0.5


def test_a_second_run_into_a_locked_output_is_refused_naming_the_holder(web_slice, ccnet_scorer, tmp_path):
    """While a run holds OUT (here: this test holds its lock, as a live run would), score and run
    refuse at once, before writing anything, with a message naming the holder."""
    from bertin_bench.locks import output_lock

    out = tmp_path / "busy"
    with output_lock(out, "bench sample run (the first)"):
        for call in (lambda: sample(web_slice(50), out, strategy="random", factor=0.5, scorer=ccnet_scorer),
                     lambda: score(web_slice(50), out, scorer=ccnet_scorer)):
            with pytest.raises(SampleError, match=rf"{out} is in use by pid {os.getpid()} .*bench sample run \(the first\)"):
                call()
        assert sorted(p.name for p in out.iterdir()) == [".bench.lock", ".bench.lock.holder"]
    assert score(web_slice(50), out, scorer=ccnet_scorer)["seen"] == 50  # free once the holder is done


class _RecordPdeathsig:
    """A pipeline step: write the signal this task's process gets when its parent dies (0: none).
    The directory travels with the pickled step: a forkserver started by an earlier test would not
    see an environment variable set now."""

    def __init__(self, directory):
        self.directory = str(directory)

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        import ctypes

        value = ctypes.c_int(0)
        ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
        Path(self.directory, f"{rank}.txt").write_text(f"{os.getpid()} {value.value}")
        return data or []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_local_pool_workers_die_with_the_command(tmp_path):
    """Each task of a multi-worker local run runs in a process the kernel kills with its parent;
    a single-worker run (tasks in the command itself) asks nothing of the command's own process."""
    import multiprocess

    from bertin_bench.executor import ExecutorOptions
    from sampling.executors import make_executor

    before = multiprocess.Manager
    make_executor([_RecordPdeathsig(tmp_path)], ExecutorOptions(tasks=2, workers=2), str(tmp_path / "logs2")).run()
    assert multiprocess.Manager is before  # datatrove's manager factory is restored after the run
    got = [(tmp_path / f"{r}.txt").read_text().split() for r in range(2)]
    assert all(int(pid) != os.getpid() and int(sig) == signal.SIGKILL for pid, sig in got)
    make_executor([_RecordPdeathsig(tmp_path)], ExecutorOptions(tasks=1, workers=1), str(tmp_path / "logs1")).run()
    pid, sig = (tmp_path / "0.txt").read_text().split()
    assert int(pid) == os.getpid() and int(sig) == 0


def test_die_with_main_exits_when_the_run_is_already_gone():
    from sampling.executors import die_with_main

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: the "main process" died before the worker asked
    for main_pid, code in ((None, 0), (dead.pid, 1)):
        child = os.fork()
        if child == 0:
            die_with_main(os.getppid() if main_pid is None else main_pid)
            os._exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == code
