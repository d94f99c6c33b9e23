"""Helpers shared by the sampling tests."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path


def read_lines(web_sample: Path, n: int) -> list[bytes]:
    with gzip.open(web_sample, "rb") as f:
        return list(itertools.islice(f, n))


def read_shards(out_dir: Path, sub: str = "data") -> list[dict]:
    """Every record of OUT/<sub>/*.jsonl.gz, in shard order."""
    records = []
    for shard in sorted((Path(out_dir) / sub).glob("*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as f:
            records.extend(json.loads(line) for line in f)
    return records


def _split(kw: dict) -> tuple[dict, dict, dict]:
    """Flat test keywords -> (ExecutorOptions, ScoreOptions, SampleOptions) fields."""
    import dataclasses

    from bertin_bench.executor import ExecutorOptions
    from sampling.options import SampleOptions, ScoreOptions

    groups: tuple[dict, dict, dict] = ({}, {}, {})
    for name, value in kw.items():
        for group, cls in zip(groups, (ExecutorOptions, ScoreOptions, SampleOptions)):
            if name in {f.name for f in dataclasses.fields(cls)}:
                group[name] = value
                break
        else:
            raise TypeError(f"no option {name!r}")
    return groups


def score(input, out_dir, *, scorer, **kw) -> dict:
    """run_score with the options given flat (tasks=2, strict=True, ...), built the way the CLI does."""
    from bertin_bench.executor import ExecutorOptions
    from sampling.options import ScoreOptions
    from sampling.pipeline import run_score

    executor, options, _ = _split(kw)
    return run_score(input, out_dir, scorer=scorer, options=ScoreOptions(executor=ExecutorOptions(**executor), **options))


def sample(input, out_dir, *, scorer=None, **kw) -> dict:
    """run_sample with the options given flat (strategy=..., target_fraction=..., tasks=2, ...)."""
    from bertin_bench.executor import ExecutorOptions
    from sampling.options import SampleOptions, ScoreOptions
    from sampling.pipeline import run_sample

    executor, options, sampling = _split(kw)
    return run_sample(input, out_dir, sample=SampleOptions(**sampling), scorer=scorer,
                      options=ScoreOptions(executor=ExecutorOptions(**executor), **options))
