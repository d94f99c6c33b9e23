"""Fixtures for the sampling tests: slices of the real web sample, scorers on the shared LM."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sampling.util import read_lines


@pytest.fixture(scope="session")
def web_slice(web_sample, tmp_path_factory):
    """Factory: the first ``n`` records of the web sample as a plain .jsonl file (cached per n)."""
    cache: dict[int, Path] = {}
    root = tmp_path_factory.mktemp("web_slices")

    def make(n: int) -> Path:
        if n not in cache:
            path = root / f"web_{n}.jsonl"
            path.write_bytes(b"".join(read_lines(web_sample, n)))
            cache[n] = path
        return cache[n]

    return make


@pytest.fixture(scope="session")
def ccnet_scorer(kenlm_dir):
    from sampling.scorer import PerplexityScorer

    return PerplexityScorer(kenlm_dir, mode="ccnet")


@pytest.fixture(scope="session")
def lines_scorer(kenlm_dir):
    from sampling.scorer import PerplexityScorer

    return PerplexityScorer(kenlm_dir, mode="lines")

