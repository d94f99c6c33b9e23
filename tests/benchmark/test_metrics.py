"""Metrics (seqeval called directly), per-example statistics, prediction packing, significance tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from benchmark import metrics, results
from benchmark.compare import paired_bootstrap, welch
from benchmark.loaders import read_conll2002
from benchmark.tasks import CONLL2002_NER_LABELS, SEQUENCE, TOKEN


def _noisy(gold: list[list[int]], rate: float, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(rng.integers(len(CONLL2002_NER_LABELS))) if rng.random() < rate else t for t in s] for s in gold]


@pytest.fixture(scope="module")
def ner_gold(data_dir):
    return [s["labels"] for s in read_conll2002(data_dir / "conll2002/esp.testb", 2, CONLL2002_NER_LABELS)]


def test_token_metrics_match_seqeval_and_example_stats(ner_gold):
    pred = _noisy(ner_gold, 0.1, seed=1)
    m = metrics.compute(TOKEN, CONLL2002_NER_LABELS, ner_gold, pred)
    assert m["accuracy"] == pytest.approx(1 - 0.1 * 8 / 9, abs=0.01)
    assert 0.3 < m["f1"] < 0.95
    perfect = metrics.compute(TOKEN, CONLL2002_NER_LABELS, ner_gold, ner_gold)
    assert perfect["f1"] == perfect["accuracy"] == 1.0
    # Summed per-example statistics reproduce the corpus-level numbers exactly (bootstrap relies on it).
    stats = metrics.example_stats(TOKEN, CONLL2002_NER_LABELS, ner_gold, pred)
    assert stats.shape == (len(ner_gold), 5)
    assert metrics.metric_from_stats(stats[None], "accuracy")[0] == pytest.approx(m["accuracy"])
    assert metrics.metric_from_stats(stats[None], "f1")[0] == pytest.approx(m["f1"])


def test_classification_metrics():
    m = metrics.compute(SEQUENCE, ("0", "1"), [0, 1, 1, 0], [0, 1, 0, 0])
    assert m["accuracy"] == 0.75
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_prediction_packing_roundtrip(ner_gold):
    pred = _noisy(ner_gold, 0.2, seed=2)
    packed = metrics.pack_predictions(TOKEN, ner_gold, pred)
    gold2, pred2 = metrics.unpack_predictions(packed)
    assert gold2 == ner_gold and pred2 == pred and packed["n"] == len(ner_gold)
    # Compact: well under 2 bytes per token of base64 text for gold + pred.
    assert len(packed["gold"]) + len(packed["pred"]) < 2 * sum(len(s) for s in ner_gold)
    g, p = metrics.unpack_predictions(metrics.pack_predictions(SEQUENCE, [0, 2, 1], [0, 1, 1]))
    assert (g, p) == ([0, 2, 1], [0, 1, 1])


# A committed NER result as the template of the runs compared: the real result format.
TEMPLATE = Path(__file__).parents[2] / "results/studies/demo/runs/demo-gaussian-s0/ner_conll2002_es/seed0.json"


def _fake_run(gold, pred, seed, score_key="f1"):
    m = metrics.compute(TOKEN, CONLL2002_NER_LABELS, gold, pred)
    template = results.FinetuneResult.from_disk(TEMPLATE)
    return dataclasses.replace(
        template, seed=seed, main_score=m[score_key],
        task=dataclasses.replace(template.task, main_score=score_key, sizes={**template.task.sizes, "test": len(gold)}),
        test=results.TestRecord(metrics=m, predictions=metrics.pack_predictions(TOKEN, gold, pred)),
    )


def test_paired_bootstrap_detects_a_real_difference_and_not_a_fake_one(ner_gold):
    worse = [_fake_run(ner_gold, _noisy(ner_gold, 0.15, seed=s), s) for s in range(2)]
    better = [_fake_run(ner_gold, _noisy(ner_gold, 0.05, seed=10 + s), s) for s in range(2)]
    same = [_fake_run(ner_gold, _noisy(ner_gold, 0.15, seed=20 + s), s) for s in range(2)]
    clear = paired_bootstrap(worse, better, n_boot=300)
    assert clear["p"] < 0.01 and clear["ci_low"] > 0 and clear["diff"] > 0.1
    null = paired_bootstrap(worse, same, n_boot=300)
    assert null["p"] > 0.05 and null["ci_low"] < 0 < null["ci_high"]
    assert all(run.errors() == [] for run in worse + better)  # the runs compared are valid results
    other_test = [_fake_run(ner_gold[:100], ner_gold[:100], 0)]
    assert np.isnan(paired_bootstrap(worse, other_test)["p"])


def test_welch_over_seeds():
    assert welch([0.80, 0.81, 0.79], [0.90, 0.91, 0.89]) < 0.01
    assert welch([0.80, 0.82], [0.81, 0.80]) > 0.5
    assert np.isnan(welch([0.8], [0.9]))
