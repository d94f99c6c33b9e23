"""The ground floor's shared helpers: atomic directories, stage markers, the CLI error path."""

from __future__ import annotations

import gzip

import click
import pytest
from click.testing import CliRunner

from bertin_bench import markers
from bertin_bench.errors import user_errors
from bertin_bench.io import atomic_dir


def test_atomic_dir_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not out.exists()  # nothing visible before the block succeeds
    assert (out / "a.txt").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left behind

    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "failed") as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("killed")
    assert not (tmp_path / "failed").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_never_replaces_unless_asked(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "user-data.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="out"):
        with atomic_dir(out):
            pass
    assert (out / "user-data.txt").read_text() == "precious"
    with atomic_dir(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_markers_skip_only_on_the_same_key(tmp_path):
    key = {"input": "a.jsonl", "seed": 0}
    assert not markers.is_done(tmp_path, key)
    markers.mark_done(tmp_path, key, {"kept": 3})
    assert markers.is_done(tmp_path, key)
    assert markers.is_done(tmp_path, {"seed": 0, "input": "a.jsonl"})  # key order does not matter
    assert not markers.is_done(tmp_path, {**key, "seed": 1})
    assert markers.summary(tmp_path) == {"kept": 3}
    # an unreadable marker is an unfinished stage, not a crash
    (tmp_path / markers.STAGE_FILE).write_text("{trunc")
    assert not markers.is_done(tmp_path, key)
    with pytest.raises(FileNotFoundError, match="no finished stage"):
        markers.summary(tmp_path)
    record = {"score": 1.0, **markers.stamp(key)}
    assert markers.matches(record, key) and not markers.matches(record, {"other": 1})
    assert not markers.matches(None, key)


def test_user_errors_name_the_file_without_a_traceback(tmp_path):
    bad = tmp_path / "cut.jsonl.gz"
    bad.write_bytes(gzip.compress(b'{"text": "hola"}\n' * 100)[:-20])

    @click.command()
    @user_errors
    def read():
        with gzip.open(bad, "rt") as f:
            try:
                f.read()
            except EOFError as err:
                raise EOFError(f"{bad}: {err}") from None

    result = CliRunner().invoke(read, [])
    assert result.exit_code == 1
    assert str(bad) in result.output and "truncated" in result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output
