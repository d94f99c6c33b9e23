"""Boundaries: quartiles of real perplexities, saved with the LM identity, mismatch refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sampling.boundaries import Boundaries, estimate_boundaries, weighted_quantiles


def test_first_n_quartiles_equal_numpy_on_scored_docs(web_slice, ccnet_scorer, tmp_path):
    path = web_slice(600)
    b = estimate_boundaries(path, scorer=ccnet_scorer, n_docs=500, progress=False)
    texts = [json.loads(line)["text"] for line in path.read_text().splitlines()[:500]]
    pps = ccnet_scorer.perplexities(texts)
    assert (b.q1, b.q2, b.q3) == tuple(float(x) for x in np.quantile(pps, [0.25, 0.5, 0.75]))
    assert b.n == 500 and b.mode == "ccnet" and b.identity == ccnet_scorer.identity()
    assert len(b.quantiles) == 1001 and b.quantiles[0] == min(pps) and b.quantiles[-1] == max(pps)

    # word-weighted quantiles: each document counted once per whitespace word
    words = [len(t.split()) for t in texts]
    repeated = np.repeat(pps, words)
    assert b.word_quantiles[0] == min(pps) and b.word_quantiles[-1] == max(pps)
    qs = np.linspace(0, 1, 1001)
    assert b.word_quantiles == [float(x) for x in np.quantile(repeated, qs, method="inverted_cdf")]

    b.save(tmp_path / "b.json")
    loaded = Boundaries.load(tmp_path / "b.json")
    assert loaded == b and loaded.path == str(tmp_path / "b.json")


def test_weighted_quantiles_count_each_value_weight_times():
    values, weights = np.array([3.0, 1.0, 2.0]), np.array([2.0, 1.0, 1.0])  # = [1, 2, 3, 3]
    assert weighted_quantiles(values, weights, np.array([0.0, 0.25, 0.5, 0.51, 1.0])).tolist() == [1, 1, 2, 3, 3]


def test_old_boundaries_without_word_quantiles_refuse_target_tokens(web_slice, ccnet_scorer, tmp_path):
    b = estimate_boundaries(web_slice(100), scorer=ccnet_scorer, n_docs=100, progress=False)
    data = b.to_dict()
    del data["word_quantiles"]  # a file written before --target-tokens existed
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = Boundaries.load(tmp_path / "old.json")
    assert old.as_tuple() == b.as_tuple()
    with pytest.raises(ValueError, match="old.json.*re-run `bench sample boundaries`"):
        old.word_sample()


def test_reservoir_is_seeded_and_covers_the_whole_input(web_slice, ccnet_scorer):
    path = web_slice(600)
    a = estimate_boundaries(path, scorer=ccnet_scorer, n_docs=100, reservoir=True, seed=1, progress=False)
    b = estimate_boundaries(path, scorer=ccnet_scorer, n_docs=100, reservoir=True, seed=1, progress=False)
    c = estimate_boundaries(path, scorer=ccnet_scorer, n_docs=100, reservoir=True, seed=2, progress=False)
    first = estimate_boundaries(path, scorer=ccnet_scorer, n_docs=100, progress=False)
    assert a.as_tuple() == b.as_tuple()
    assert a.as_tuple() != c.as_tuple() and a.as_tuple() != first.as_tuple()
    assert a.reservoir and a.n == 100


def test_boundaries_from_another_mode_or_lm_are_refused(web_slice, ccnet_scorer, lines_scorer, tmp_path):
    b = estimate_boundaries(web_slice(600), scorer=ccnet_scorer, n_docs=50, progress=False)
    b.save(tmp_path / "b.json")
    loaded = Boundaries.load(tmp_path / "b.json")
    loaded.check(ccnet_scorer.identity())  # same LM and mode: fine
    with pytest.raises(ValueError, match=r"b\.json.*mode: 'ccnet' here vs 'lines'"):
        loaded.check(lines_scorer.identity())
    with pytest.raises(ValueError, match="lm_hash"):
        loaded.check({**ccnet_scorer.identity(), "lm_hash": "sha256:other"})


def test_bad_boundaries_files(tmp_path):
    (tmp_path / "x.json").write_text('{"q1": 1')
    with pytest.raises(ValueError, match=r"x\.json:1: invalid JSON"):
        Boundaries.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"q1": 1}')
    with pytest.raises(ValueError, match="not a boundaries file"):
        Boundaries.load(tmp_path / "y.json")
    (tmp_path / "z.json").write_text(json.dumps({"format": "bertin-bench/boundaries/v1", "q1": 5, "q2": 2, "q3": 9,
                                                 "identity": {}, "mode": "lines", "n": 3}))
    with pytest.raises(ValueError, match="Q1 <= Q2 <= Q3"):
        Boundaries.load(tmp_path / "z.json")
