"""``build_leaderboard``: results/leaderboard.{csv,md} from the result files on disk only.

One row per model (and per subsampling setting: runs with --limit-train/--limit-eval get their own,
marked row, so quick runs never average with full ones), one column per task with mean ± std over
seeds and n, an average over a declared task group (empty when any of its tasks is missing), a cost
column (fine-tuning seconds summed over the row's runs; pre-training tokens for our checkpoints),
and the published scores of the registry's baselines as separate rows marked "reported".
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from bertin_bench.io import write_text_atomic

from benchmark import results
from benchmark.models import MODELS
from benchmark.tasks import GROUPS, TASKS

log = logging.getLogger(__name__)


def _row_label(name: str, limits: tuple) -> str:
    if limits == (None, None):
        return name
    return f"{name} [subsampled: train≤{limits[0] or 'all'}, eval≤{limits[1] or 'all'}]"


def _fmt(mean: float, std: float | None, n: int | None, flag: str = "") -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if n is None:
        return f"{100 * mean:.2f}{flag}"
    return f"{100 * mean:.2f} ± {100 * (std or 0):.2f} (n={n})"


def collect(results_dir: str | Path) -> dict:
    """Measured runs grouped as {(model, limits): {"tasks": {task: [FinetuneResult...]}, ...}}; runs of a
    task version other than the registry's are left out (and logged)."""
    rows: dict = defaultdict(lambda: {"tasks": defaultdict(list), "pretraining_tokens": None})
    stale = 0
    for _, res in results.iter_results(results_dir):
        spec = TASKS.get(res.task.name)
        if spec is None or spec.version != res.task.version:
            stale += 1
            continue
        key = (res.model.name, res.limits)
        rows[key]["tasks"][res.task.name].append(res)
        if res.model.pretraining_tokens is not None:
            rows[key]["pretraining_tokens"] = res.model.pretraining_tokens
    if stale:
        log.warning("%d result files are for task versions not in the registry; left out", stale)
    return rows


def build_leaderboard(results_dir: str | Path = "results", group: str = "bertin", include_reported: bool = True,
                      write: bool = True):
    """The leaderboard as a DataFrame; also writes ``leaderboard.csv`` and ``leaderboard.md``."""
    import pandas as pd

    if group not in GROUPS:
        raise KeyError(f"unknown task group {group!r}; valid: {', '.join(GROUPS)}")
    tasks = list(GROUPS[group])
    measured = collect(results_dir)
    # Tasks outside the group that have results get columns too (not averaged).
    extra = sorted({t for row in measured.values() for t in row["tasks"]} - set(tasks))
    columns = tasks + extra
    records = []
    for (name, limits), row in sorted(measured.items()):
        rec = {"model": _row_label(name, limits), "kind": "measured"}
        means = []
        seconds = 0.0
        for t in columns:
            runs = row["tasks"].get(t, [])
            scores = np.array([r.main_score for r in runs], dtype=float)
            protocols = sorted({r.task.protocol for r in runs})
            rec[f"{t}_mean"] = float(scores.mean()) if len(scores) else math.nan
            rec[f"{t}_std"] = float(scores.std(ddof=1)) if len(scores) > 1 else (0.0 if len(scores) else math.nan)
            rec[f"{t}_n"] = len(scores)
            rec[f"{t}_protocol"] = ",".join(protocols)
            seconds += sum(r.timing.train_seconds for r in runs)
            if t in tasks:
                means.append(rec[f"{t}_mean"])
        rec[f"avg_{group}"] = float(np.mean(means)) if means and not any(math.isnan(m) for m in means) else math.nan
        rec["finetune_seconds"] = round(seconds, 1)
        rec["pretraining_tokens"] = row["pretraining_tokens"]
        rec["source"] = ""
        records.append(rec)
    if include_reported:
        records.extend(_reported_rows(columns, tasks, group))
    df = pd.DataFrame.from_records(records)
    if write:
        out = Path(results_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "leaderboard.csv", df.to_csv(index=False))
        write_text_atomic(out / "leaderboard.md", to_markdown(df, columns, tasks, group))
    return df


def _reported_rows(columns: list[str], tasks: list[str], group: str) -> list[dict]:
    rows: dict = {}
    for spec in MODELS.values():
        for rep in spec.reported:
            key = (spec.name, rep.table)
            rec = rows.setdefault(key, {"model": f"{spec.name} (reported: {rep.table})", "kind": "reported",
                                        "source": rep.source, "finetune_seconds": None, "pretraining_tokens": None})
            task = TASKS[rep.task]
            if rep.task in columns and task.main_score in rep.metrics:
                rec[f"{rep.task}_mean"] = rep.metrics[task.main_score]
                rec[f"{rep.task}_repetition"] = rep.repetition
    out = []
    for rec in rows.values():
        vals = [rec.get(f"{t}_mean") for t in tasks]
        rec[f"avg_{group}"] = float(np.mean(vals)) if all(v is not None for v in vals) else math.nan
        out.append(rec)
    return out


def to_markdown(df, columns: list[str], tasks: list[str], group: str) -> str:
    protocol = {}
    for t in columns:
        col = f"{t}_protocol"
        seen = sorted({p for v in (df[col].dropna() if col in df else []) for p in str(v).split(",") if p})
        protocol[t] = f" ({'/'.join(seen)})" if seen else ""
    head = ["model"] + [f"{t}{protocol[t]}" for t in columns] + [f"avg {group}", "fine-tune s", "pre-train tokens"]
    lines = [
        "# Leaderboard",
        "",
        "Main score per task (× 100): mean ± sample std over seeds (n = seeds). Built from result files only "
        "by `bench leaderboard`. `dev-train` = no train split available: trained on validation minus a "
        "hashed 10% slice used for epoch selection, scored on test; never comparable with `official` numbers. "
        f"`avg {group}` is empty unless every task of the group ({', '.join(tasks)}) has results. "
        "Rows marked *reported* are published numbers (BERTIN model card, revision linked), not runs of this "
        "suite, trained with the official Hub train splits (so not comparable with `dev-train` cells); `*` after a "
        "reported number = the card's repeated run. Subsampled rows are quick runs on a slice of the data.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for _, r in df.iterrows():
        reported = r["kind"] == "reported"
        cells = [f"*{r['model']}*" if reported else r["model"]]
        for t in columns:
            mean = r.get(f"{t}_mean")
            if reported:
                rep = r.get(f"{t}_repetition")
                flag = "*" if isinstance(rep, (bool, np.bool_)) and rep else ""
                cells.append(_fmt(mean, None, None, flag) if mean is not None and not _isnan(mean) else "")
            else:
                cells.append(_fmt(mean, r.get(f"{t}_std"), int(r.get(f"{t}_n") or 0)) if not _isnan(mean) else "")
        avg = r.get(f"avg_{group}")
        cells.append("" if _isnan(avg) else f"{100 * avg:.2f}")
        secs = r.get("finetune_seconds")
        cells.append("" if secs is None or _isnan(secs) else f"{secs:,.0f}")
        tok = r.get("pretraining_tokens")
        cells.append("" if tok is None or _isnan(tok) else f"{int(tok):,}")
        lines.append("| " + " | ".join(cells) + " |")
    sources = sorted({s for s in df.get("source", []) if isinstance(s, str) and s})
    if sources:
        lines += ["", "Reported numbers from: " + ", ".join(sources)]
    return "\n".join(lines) + "\n"


def _isnan(x) -> bool:
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return False
