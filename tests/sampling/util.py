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
