"""The settings values: a bad one fails at construction with a message naming the option."""

from __future__ import annotations

import dataclasses

import pytest

from bertin_bench.executor import ExecutorOptions
from sampling.options import SampleError, SampleOptions, ScoreOptions


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "dask"}, "executor kind 'dask' is unknown; choose one of local, slurm, ray"),
    ({"tasks": 0}, "tasks must be an integer >= 1, got 0"),
    ({"workers": -1}, "workers must be an integer >= 1, got -1"),
    ({"tasks": 2.5}, "tasks must be an integer >= 1, got 2.5"),
    ({"cpus_per_task": 0}, "cpus_per_task must be an integer >= 1"),
    ({"mem_per_cpu_gb": 0}, "mem_per_cpu_gb must be an integer >= 1"),
    ({"kind": "slurm", "slurm_partition": "cpu"}, "needs slurm_partition and slurm_time"),
])
def test_executor_options_refuse_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExecutorOptions(**kwargs)


def test_executor_options_defaults_and_immutability():
    o = ExecutorOptions()
    assert (o.kind, o.tasks, o.workers, o.logging_dir) == ("local", 1, 1, None)
    assert ExecutorOptions(kind="slurm", slurm_partition="cpu", slurm_time="01:00:00").kind == "slurm"
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.tasks = 2
    with pytest.raises(TypeError):
        ExecutorOptions("local")  # keyword-only: a positional 4 could be tasks or workers


@pytest.mark.parametrize("kwargs, message", [
    ({"limit": 0}, r"limit \(--limit\) must be >= 1"),
    ({"max_chars": -1}, r"max_chars \(--max-chars\) must be >= 0"),
    ({"text_key": ""}, r"text_key \(--text-key\) must name a field"),
    ({"executor": {"tasks": 2}}, "executor must be an ExecutorOptions"),
])
def test_score_options_refuse_bad_values(kwargs, message):
    with pytest.raises(SampleError, match=message):
        ScoreOptions(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"target_fraction": 0.3, "target_docs": 10}, "not --target-fraction and --target-docs"),
    ({"target_fraction": 0.0}, r"target_fraction \(--target-fraction\) must be in \(0, 1\]"),
    ({"target_fraction": 1.5}, r"must be in \(0, 1\], got 1.5"),
    ({"target_docs": 0}, r"target_docs \(--target-docs\) must be >= 1"),
    ({"target_tokens": -5}, r"target_tokens \(--target-tokens\) must be >= 1"),
    ({"boundary_docs": 0}, r"boundary_docs \(--boundary-docs\) must be >= 1"),
])
def test_sample_options_refuse_bad_values(kwargs, message):
    with pytest.raises(SampleError, match=message):
        SampleOptions(strategy="gaussian", **kwargs)


def test_sample_options_need_a_strategy():
    with pytest.raises(TypeError):
        SampleOptions()
    assert SampleOptions(strategy="random", target_fraction=1.0).strategy_name == "random"


def test_cli_reports_a_bad_option_in_one_line(tmp_path):
    from click.testing import CliRunner

    from bertin_bench.cli import main

    res = CliRunner().invoke(main, ["sample", "score", "-i", str(tmp_path / "x.jsonl"), "-o", str(tmp_path / "o"),
                                    "--executor", "slurm"])
    assert res.exit_code == 1 and "needs slurm_partition and slurm_time" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "o").exists()
