"""Task metrics, offline: accuracy and seqeval entity F1 (seqeval called directly, never through
``evaluate.load``, which would fetch the metric script from the Hub).

Besides the corpus-level numbers, ``example_stats`` gives per-example sufficient statistics
(correct/total tokens, entity tp/pred/gold) whose sums reproduce the corpus metrics exactly; a paired
bootstrap over test examples resamples those rows (``benchmark.compare``).
"""

from __future__ import annotations

import base64
import zlib

import numpy as np

STAT_COLUMNS = ("correct", "total", "tp", "n_pred", "n_gold")


def _entities(tags: list[str]) -> set[tuple]:
    import warnings

    from seqeval.metrics.sequence_labeling import get_entities

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return set(get_entities(tags))


def token_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Token accuracy, and seqeval micro precision/recall/F1 (default, conlleval-like mode)."""
    import warnings

    from seqeval.metrics import f1_score, precision_score, recall_score

    correct = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    total = sum(len(gs) for gs in gold)
    with warnings.catch_warnings():
        # seqeval warns for every non-IOB tag; POS tags are not IOB and BERTIN scored them anyway.
        warnings.simplefilter("ignore", UserWarning)
        return {
            "accuracy": correct / total if total else 0.0,
            "f1": float(f1_score(gold, pred, zero_division=0)),
            "precision": float(precision_score(gold, pred, zero_division=0)),
            "recall": float(recall_score(gold, pred, zero_division=0)),
        }


def classification_metrics(gold: list[int], pred: list[int], n_labels: int) -> dict[str, float]:
    """Accuracy and macro F1 over the task's labels."""
    g, p = np.asarray(gold), np.asarray(pred)
    f1s = []
    for k in range(n_labels):
        tp = np.sum((p == k) & (g == k))
        denom = np.sum(p == k) + np.sum(g == k)
        if np.sum(g == k):
            f1s.append(2 * tp / denom if denom else 0.0)
    return {"accuracy": float(np.mean(g == p)) if len(g) else 0.0, "macro_f1": float(np.mean(f1s)) if f1s else 0.0}


def compute(task_type: str, labels: tuple[str, ...], gold, pred) -> dict[str, float]:
    """All metrics of a task from label ids (lists of lists for token tasks)."""
    from benchmark.tasks import TOKEN

    if task_type == TOKEN:
        g = [[labels[i] for i in s] for s in gold]
        p = [[labels[i] for i in s] for s in pred]
        out = token_metrics(g, p)
        out["seqeval_f1"] = out["f1"]  # the name BERTIN's POS table uses for the same number
        return out
    return classification_metrics(gold, pred, len(labels))


def example_stats(task_type: str, labels: tuple[str, ...], gold, pred) -> np.ndarray:
    """(n_examples, 5) int array: correct, total, tp, n_pred, n_gold per example."""
    from benchmark.tasks import TOKEN

    rows = []
    if task_type == TOKEN:
        for gs, ps in zip(gold, pred):
            gt, pt = [labels[i] for i in gs], [labels[i] for i in ps]
            ge, pe = _entities(gt), _entities(pt)
            rows.append((sum(a == b for a, b in zip(gs, ps)), len(gs), len(ge & pe), len(pe), len(ge)))
    else:
        for g, p in zip(gold, pred):
            rows.append((int(g == p), 1, 0, 0, 0))
    return np.asarray(rows, dtype=np.int64).reshape(-1, len(STAT_COLUMNS))


def metric_from_stats(stats: np.ndarray, metric: str) -> np.ndarray:
    """A metric from summed statistics; ``stats`` is (..., n_examples, 5) and sums over examples."""
    s = stats.sum(axis=-2).astype(np.float64)
    correct, total, tp, n_pred, n_gold = (s[..., i] for i in range(5))
    if metric == "accuracy":
        return np.divide(correct, total, out=np.zeros_like(correct), where=total > 0)
    if metric in ("f1", "seqeval_f1"):
        denom = n_pred + n_gold
        return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    raise ValueError(f"no per-example statistics for metric {metric!r} (bootstrap supports accuracy, f1)")


# --- compact storage of predictions in result files --------------------------------------------


def encode_ints(values) -> str:
    """Small non-negative ints as base64(zlib(uint16 little-endian)): ~1 byte per test token."""
    arr = np.asarray(values, dtype="<u2")
    return base64.b64encode(zlib.compress(arr.tobytes(), 9)).decode("ascii")


def decode_ints(text: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<u2").astype(np.int64)


def pack_predictions(task_type: str, gold, pred) -> dict:
    from benchmark.tasks import TOKEN

    if task_type == TOKEN:
        lengths = [len(s) for s in gold]
        return {
            "encoding": "zlib+base64 uint16 le", "n": len(gold), "lengths": encode_ints(lengths),
            "gold": encode_ints([x for s in gold for x in s]), "pred": encode_ints([x for s in pred for x in s]),
        }
    return {"encoding": "zlib+base64 uint16 le", "n": len(gold), "gold": encode_ints(gold), "pred": encode_ints(pred)}


def unpack_predictions(packed: dict) -> tuple[list, list]:
    gold, pred = decode_ints(packed["gold"]), decode_ints(packed["pred"])
    if "lengths" not in packed:
        return gold.tolist(), pred.tolist()
    bounds = np.cumsum(decode_ints(packed["lengths"]))[:-1]
    return [a.tolist() for a in np.split(gold, bounds)], [a.tolist() for a in np.split(pred, bounds)]
