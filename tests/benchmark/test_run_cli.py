"""`bench run`'s command line as a new user meets it: `--data-dir` after the subcommand, `--epochs`
and `--lr`, every setting checked with its key named before JAX and transformers are imported, and
the end-of-run speed not counting compilation."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from bertin_bench import paths
from bertin_bench.cli import main

# One process per case: proves the failure comes before the heavy imports (a typo used to cost ~20 s).
PROBE = """
import sys
from bertin_bench.cli import main
try:
    main(sys.argv[1:], prog_name="bench", standalone_mode=True)
except SystemExit as e:
    heavy = sorted(m for m in ("jax", "transformers", "datasets", "torch") if m in sys.modules)
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
    raise
"""


def bench_light(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--set", "epochs=0"], "--set epochs=0: must be >= 1"),
    (["--set", "batch_size=0"], "--set batch_size=0: must be >= 1"),
    (["--set", "learning_rate=abc"], "--set learning_rate=abc: expected a number"),
    (["--set", "warmup_ratio=1.5"], "--set warmup_ratio=1.5: must be >= 0.0 and <= 1.0"),
    (["--set", "epochs=2.5"], "--set epochs=2.5: expected an integer"),
    (["--set", "lr=1e-3"], "unknown hyperparameter 'lr'; valid: batch_size, epochs"),
    (["--set", "epochs"], "expected KEY=VALUE"),
    (["--epochs", "0"], "Invalid value for '--epochs'"),
    (["--lr", "0"], "Invalid value for '--lr'"),
    (["--epochs", "3", "--set", "epochs=2"], "--epochs 3 and --set epochs=2 disagree"),
    (["-t", "nerr"], "unknown task 'nerr'; valid tasks: pos_conll2002_es"),
])
def test_bad_settings_fail_at_once_naming_the_key(args, message):
    res = bench_light("run", "-m", "beto", "-t", "ner_conll2002_es", *args)
    assert res.returncode != 0 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert "HEAVY=\n" in res.stderr  # nothing heavy imported


def test_unknown_model_fails_fast_with_the_registry(tmp_path):
    res = bench_light("run", "-m", "betoo", "-t", "ner_conll2002_es")
    assert res.returncode == 1 and "unknown model 'betoo'" in res.stderr and "Did you mean 'beto'?" in res.stderr
    assert "HEAVY=\n" in res.stderr
    (tmp_path / "config.json").write_text("{}")
    res = bench_light("run", "-m", str(tmp_path), "-t", "ner_conll2002_es")
    assert res.returncode == 1 and f"{tmp_path}: no weights" in res.stderr and "HEAVY=\n" in res.stderr
    (tmp_path / "flax_model.msgpack").write_bytes(b"")
    res = bench_light("run", "-m", str(tmp_path), "-t", "ner_conll2002_es")
    assert res.returncode == 1 and f"{tmp_path}: no tokenizer files" in res.stderr and "HEAVY=\n" in res.stderr


def test_data_dir_is_accepted_after_any_subcommand(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "_override", None)
    runner = CliRunner()
    res = runner.invoke(main, ["run", "--help"])
    assert "--data-dir" in res.output and "BERTIN_DATA_DIR" in res.output
    for args in (["ls", "tasks", "--data-dir", str(tmp_path)], ["--data-dir", str(tmp_path), "ls", "tasks"]):
        res = runner.invoke(main, args)
        assert res.exit_code == 0, res.output
        assert paths.data_dir() == tmp_path.resolve()  # the empty directory: no task is local there
        assert "no local files" in res.output and "[local" not in res.output
        monkeypatch.setattr(paths, "_override", None)
    for group in (["sample", "score"], ["pretrain", "export"], ["study"]):
        res = runner.invoke(main, [*group, "--help"])
        assert res.exit_code == 0 and "--data-dir" in res.output, (group, res.output)
    # after the subcommand it wins over the one before it
    res = runner.invoke(main, ["--data-dir", "/nonexistent", "ls", "tasks", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0 and paths.data_dir() == tmp_path.resolve()
    monkeypatch.setattr(paths, "_override", None)


def test_end_of_run_speed_leaves_compilation_out():
    from types import SimpleNamespace

    from benchmark.cli import _speed

    res = SimpleNamespace(dev=SimpleNamespace(per_epoch=[{"train_seconds": 10.0}, {"train_seconds": 1.0}, {"train_seconds": 1.0}]),
                          timing=SimpleNamespace(train_examples_seen=300, examples_per_second=25.0))
    assert _speed(res) == "100 train ex/s"  # epochs 2-3: 200 examples in 2 s; epoch 1 compiled
    res.dev.per_epoch = res.dev.per_epoch[:1]
    assert _speed(res) == "25 train ex/s incl. compilation"
