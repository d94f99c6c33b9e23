"""``OUT/stats.json`` and the histogram, aggregated from the per-task files on disk.

Two per-task sources, both written before a task's completion marker: our sampler's counters and
histograms (``OUT/logs/sampling/NNNNN.json``) and datatrove's own task stats
(``OUT/logs/stats/NNNNN.json``), where the validation filter counts drops as ``dropped_<reason>``.
Aggregation only reads files, so it also works after a cluster run (``bench sample stats OUT``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from bertin_bench.io import read_json, write_json_atomic
from bertin_bench.provenance import environment
from sampling.histogram import HIST_BINS, HIST_HI, HIST_LO, hist_quantile
from sampling.io import DATA_SUBDIR, ShardWriter
from sampling.steps import VALIDATE_STEP

log = logging.getLogger(__name__)

LOGS = "logs"  # datatrove's logging dir inside OUT: logs, task stats, completion markers
TASK_STATS = "sampling"  # our per-task counters, inside LOGS


def _add(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, list):
            out[k] = [x + y for x, y in zip(out.get(k, [0] * len(v)), v)]
        else:
            out[k] = out.get(k, 0) + v
    return out


def _summary(g: dict, with_hist: bool = False) -> dict:
    seen, kept = g["seen"], g["kept"]
    out = {
        "seen": seen, "kept": kept,
        "keep_rate": kept / seen if seen else None,
        "expected_kept": round(g["expected_kept"], 3),
        "expected_rate": g["expected_kept"] / seen if seen else None,
        "words_seen": g["words_seen"], "words_kept": g["words_kept"],
        "median_perplexity_approx": hist_quantile(g["hist_seen"], 0.5),
    }
    if with_hist:
        out["hist_seen"], out["hist_kept"] = g["hist_seen"], g["hist_kept"]
    return out


def _skip_reasons(stats_file: Path) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for step in read_json(stats_file):
        if not str(step.get("name", "")).endswith(VALIDATE_STEP):  # datatrove prefixes the step type
            continue
        for key, val in step.get("stats", {}).items():
            if key.startswith("dropped_"):
                total = val["total"] if isinstance(val, dict) else val
                reasons[key[len("dropped_"):]] = reasons.get(key[len("dropped_"):], 0) + int(total)
    return reasons


def aggregate(out_dir, *, executor, config: dict | None = None, strategy=None, boundaries=None, scorer=None,
              reused_scores: bool = False, plot: bool = True, provenance: dict | None = None) -> dict:
    """Sum the per-task files into ``stats.json`` (+ the histogram PNG). ``executor``: the datatrove
    executor of the pass (or ``executors.completion_view``), asked which tasks completed. With tasks
    still missing (a cluster run in progress) nothing is written and the status says how many are done."""
    out_dir = Path(out_dir)
    logs = out_dir / LOGS
    tasks = executor.world_size
    incomplete = executor.get_incomplete_ranks()
    if incomplete:
        return {"status": "incomplete", "tasks": tasks, "completed": tasks - len(incomplete)}
    if config is None:
        config = read_json(out_dir / "run.json")["config"]
    totals: dict = {}
    by_quartile: dict = {}
    by_source: dict = {}
    skipped: dict[str, int] = {}
    for r in range(tasks):
        task = read_json(logs / TASK_STATS / f"{r:05d}.json")
        totals = _add(totals, task["total"])
        for key, dest in (("by_quartile", by_quartile), ("by_source", by_source)):
            for name, g in task[key].items():
                dest[name] = _add(dest.get(name, {}), g)
        for reason, n in _skip_reasons(logs / "stats" / f"{r:05d}.json").items():
            skipped[reason] = skipped.get(reason, 0) + n
    skipped_total = sum(skipped.values())
    valid = totals["seen"]
    stats = {
        "status": "complete",
        "command": config.get("command"),
        "input": config.get("input"),
        "records": valid + skipped_total,  # every record read, valid or not
        "seen": valid,  # valid, scored documents that reached the sampler
        "kept": totals["kept"],
        "kept_fraction": totals["kept"] / valid if valid else None,
        "expected_kept": round(totals["expected_kept"], 3),
        "expected_fraction": totals["expected_kept"] / valid if valid else None,
        "target": config.get("target"),
        "skipped": dict(sorted(skipped.items())),
        "skipped_total": skipped_total,
        "words_seen": totals["words_seen"],
        "tokens_kept": totals["words_kept"],  # whitespace words of the kept documents
        "expected_tokens_kept": round(totals.get("expected_words_kept", 0.0), 1),  # sum of keep probability x words
        "perplexity": {
            "median_approx": hist_quantile(totals["hist_seen"], 0.5),
            "q1_approx": hist_quantile(totals["hist_seen"], 0.25),
            "q3_approx": hist_quantile(totals["hist_seen"], 0.75),
        },
        "by_quartile": {k: _summary(v) for k, v in sorted(by_quartile.items())},
        "by_source": {k: _summary(v) for k, v in sorted(by_source.items())},
        "strategy": strategy.params() if strategy is not None else config.get("strategy"),
        "seed": config.get("seed"),
        "boundaries": ({"q1": boundaries.q1, "q2": boundaries.q2, "q3": boundaries.q3, "n": boundaries.n,
                        "file": boundaries.path, "source": boundaries.source}
                       if boundaries is not None else config.get("boundaries")),
        "scorer": scorer.describe() if scorer is not None else config.get("scorer"),
        "reused_stored_perplexity": reused_scores,
        "tasks": tasks,
        "shards": [f"{DATA_SUBDIR}/{ShardWriter.shard_name(r)}" for r in range(tasks)],
        "histogram": {"log10_lo": HIST_LO, "log10_hi": HIST_HI, "bins": HIST_BINS,
                      "seen": totals["hist_seen"], "kept": totals["hist_kept"]},
        "provenance": provenance or environment(),
    }
    if plot and valid:
        from sampling.plots import perplexity_histogram

        png = perplexity_histogram(out_dir / "perplexity_hist.png", totals["hist_seen"], totals["hist_kept"],
                                   boundaries=boundaries, strategy=strategy, title=str(config.get("input")))
        stats["histogram_png"] = png.name
    write_json_atomic(out_dir / "stats.json", stats)
    return stats
