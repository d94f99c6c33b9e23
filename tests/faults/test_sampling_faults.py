"""Faults against the real ``bench sample`` commands on small real inputs (the first few thousand
documents of the web sample, the shared KenLM): kills, a rerun, a concurrent run, bad input.

Every scenario asserts what the user gets: the exit code, a message naming the thing, the kept
ids against an uninterrupted run (nothing lost, nothing duplicated), no process of the run left
alive, no ``.partial`` file left under the output.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import signal
import time

import pytest

from tests.faults.conftest import (
    bench, group_members, kill_group, start_bench, visible_partials, wait_for, wait_group_gone,
)
from tests.sampling.util import read_shards

pytestmark = pytest.mark.faults

KILL_DOCS = 6000  # long enough (a few seconds on 2 cores) for a kill to land while both tasks run


def run_args(src, out, kenlm_dir, *extra):
    return ["sample", "run", "-i", src, "-o", out, "--lm-dir", kenlm_dir, "--strategy", "random", "--factor", "0.5",
            "--tasks", 2, "--workers", 2, *extra]


def kept_ids(out) -> list[str]:
    return [r["url"] for r in read_shards(out)]


@pytest.fixture(scope="module")
def kill_input(web_docs):
    path = web_docs(KILL_DOCS)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        urls = [json.loads(line)["url"] for line in f]
    assert len(set(urls)) == len(urls), "the ids must be unique for the comparisons below"
    return path


@pytest.fixture(scope="module")
def uninterrupted(kill_input, kenlm_dir, tmp_path_factory):
    """The kept ids of the same run, never interrupted."""
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    res = bench(*run_args(kill_input, out, kenlm_dir))
    assert res.returncode == 0, res.output
    ids = kept_ids(out)
    assert ids and len(ids) == len(set(ids))
    return sorted(ids)


def _start_and_wait_for_tasks(src, out, kenlm_dir, log):
    """Start the run and return once both tasks are writing their shards."""
    proc = start_bench(*run_args(src, out, kenlm_dir), log=log)
    partials = [out / "data" / f".{r:05d}.jsonl.gz.partial" for r in range(2)]
    try:
        wait_for(lambda: all(p.exists() for p in partials) or proc.poll() is not None, what="both tasks to start")
    except AssertionError:
        kill_group(proc.pid)
        raise
    assert proc.poll() is None, log.read_text()
    time.sleep(0.3)  # into the scoring
    assert not (out / "stats.json").exists(), "the run finished before the fault: use a bigger input"
    return proc


def _assert_complete_and_equal(out, expected):
    ids = kept_ids(out)
    assert len(ids) == len(set(ids)), f"duplicated: {[k for k, n in collections.Counter(ids).items() if n > 1][:5]}"
    assert sorted(ids) == expected
    assert visible_partials(out) == []
    assert json.loads((out / "stats.json").read_text())["kept"] == len(expected)


@pytest.mark.parametrize("whom", ["main process", "whole group"])
def test_kill_then_immediate_rerun(whom, kill_input, kenlm_dir, uninterrupted, tmp_path):
    out = tmp_path / "out"
    proc = _start_and_wait_for_tasks(kill_input, out, kenlm_dir, tmp_path / "first.log")
    try:
        if whom == "main process":  # what an OOM killer or a closed terminal does
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        left = wait_group_gone(proc.pid, timeout=5)
        assert left == [], f"processes of the killed run still alive: {left}"
    finally:
        kill_group(proc.pid)
    res = bench(*run_args(kill_input, out, kenlm_dir))  # at once, the same command
    assert res.returncode == 0, res.output
    assert "Traceback" not in res.output
    _assert_complete_and_equal(out, uninterrupted)


def test_a_concurrent_second_run_is_refused_naming_the_holder(kill_input, kenlm_dir, uninterrupted, tmp_path):
    out = tmp_path / "out"
    first = _start_and_wait_for_tasks(kill_input, out, kenlm_dir, tmp_path / "first.log")
    try:
        second = bench(*run_args(kill_input, out, kenlm_dir))
        assert second.returncode == 1, second.output
        assert f"{out} is in use by pid {first.pid}" in second.output and "bench sample run" in second.output
        assert "Traceback" not in second.output
        assert first.wait(timeout=120) == 0, (tmp_path / "first.log").read_text()
        assert wait_group_gone(first.pid, timeout=5) == []
    finally:
        kill_group(first.pid)
    _assert_complete_and_equal(out, uninterrupted)
    score = bench("sample", "score", "-i", kill_input, "-o", out, "--lm-dir", kenlm_dir, "--tasks", 2)
    assert score.returncode == 1 and "another configuration" in score.output  # the lock is released; config still guards


# -- bad input ----------------------------------------------------------------------------------


def _complete_lines(path) -> int:
    n = 0
    try:
        with gzip.open(path, "rb") as f:
            for _ in f:
                n += 1
    except EOFError:
        pass
    return n


@pytest.fixture(scope="module")
def truncated(web_docs, tmp_path_factory):
    raw = web_docs(2000).read_bytes()
    path = tmp_path_factory.mktemp("truncated") / "cut.jsonl.gz"
    path.write_bytes(raw[: len(raw) // 2])
    return path, _complete_lines(path)


def test_truncated_gzip_is_counted_and_the_rest_kept(truncated, kenlm_dir, tmp_path):
    path, complete = truncated
    res = bench("sample", "score", "-i", path, "-o", tmp_path / "o", "--lm-dir", kenlm_dir, "--tasks", 2,
                "--workers", 2)
    assert res.returncode == 0, res.output
    assert "Traceback" not in res.output and "truncated_gzip" in res.output and str(path) in res.output
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["skipped"] == {"truncated_gzip": 1}  # one per truncated file: the cut record
    assert stats["seen"] == complete and len(read_shards(tmp_path / "o")) == complete
    assert visible_partials(tmp_path / "o") == []


def test_truncated_gzip_under_strict_is_one_line_naming_file_and_line(truncated, kenlm_dir, tmp_path):
    path, complete = truncated
    res = bench("sample", "run", "-i", path, "-o", tmp_path / "o", "--lm-dir", kenlm_dir, "--strategy", "random",
                "--factor", "0.5", "--strict", "--tasks", 2, "--workers", 2)
    assert res.returncode == 1
    assert f"{path}:{complete + 1}: truncated_gzip" in res.output
    assert "Traceback" not in res.output and "Aborted" not in res.output
    assert visible_partials(tmp_path / "o") == []


def test_truncated_gzip_boundaries(truncated, kenlm_dir, tmp_path):
    path, _ = truncated
    res = bench("sample", "boundaries", "-i", path, "-o", tmp_path / "b.json", "--lm-dir", kenlm_dir, "--n-docs", 5000)
    assert res.returncode == 0, res.output
    assert "Aborted" not in res.output and "truncated_gzip" in res.output and str(path) in res.output


@pytest.fixture(scope="module")
def broken_lines(web_docs, tmp_path_factory):
    """300 real records with a non-UTF-8 line at 50 and a malformed JSON line at 120."""
    with gzip.open(web_docs(2000), "rb") as f:
        lines = [next(f) for _ in range(300)]
    lines.insert(49, b'{"text": "caf\xe9 con leche", "url": "x://latin1"}\n')
    lines.insert(119, b'{"text": "sin cerrar\n')
    path = tmp_path_factory.mktemp("broken") / "broken.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def test_invalid_utf8_and_malformed_line(broken_lines, kenlm_dir, tmp_path):
    res = bench("sample", "score", "-i", broken_lines, "-o", tmp_path / "o", "--lm-dir", kenlm_dir)
    assert res.returncode == 0, res.output
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["skipped"] == {"invalid_utf8": 1, "malformed_json": 1} and stats["seen"] == 300
    strict = bench("sample", "score", "-i", broken_lines, "-o", tmp_path / "s", "--lm-dir", kenlm_dir, "--strict")
    assert strict.returncode == 1
    assert f"{broken_lines}:50: invalid_utf8" in strict.output and "Traceback" not in strict.output
    assert visible_partials(tmp_path / "s") == []


def test_wrong_text_column_lists_the_columns_and_suggests_text_key(web_docs, kenlm_dir, tmp_path):
    with gzip.open(web_docs(2000), "rt", encoding="utf-8") as f:
        records = [json.loads(next(f)) for _ in range(50)]
    path = tmp_path / "renamed.jsonl"
    path.write_text("".join(json.dumps({"content": r.pop("text"), **r}) + "\n" for r in records), encoding="utf-8")
    res = bench("sample", "score", "-i", path, "-o", tmp_path / "o", "--lm-dir", kenlm_dir)
    assert res.returncode == 1, res.output
    assert "--text-key" in res.output and "content" in res.output and str(path) in res.output
    assert "Traceback" not in res.output
    ok = bench("sample", "score", "-i", path, "-o", tmp_path / "o2", "--lm-dir", kenlm_dir, "--text-key", "content")
    assert ok.returncode == 0 and len(read_shards(tmp_path / "o2")) == 50


def test_no_process_of_the_suite_left(tmp_path):
    """Belt and braces: no `bench` process started by this module is alive (children of the test)."""
    mine = [pid for pid in group_members(os.getpgid(0)) if pid != os.getpid()]
    stray = []
    for pid in mine:
        try:
            if b"bench" in open(f"/proc/{pid}/cmdline", "rb").read():
                stray.append(pid)
        except OSError:
            pass
    assert stray == []
