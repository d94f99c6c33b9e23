"""``loss_curve.png``: training and held-out MLM loss against steps, from ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from bertin_bench import plotting

METRICS_FILE = "metrics.jsonl"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` (training rows have ``loss``, eval rows ``eval_loss``)."""
    path = Path(run_dir) / METRICS_FILE
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: invalid JSON ({err.msg})") from None
    return records


class LossRows(NamedTuple):
    """A run's loss series as ``(step, loss)`` pairs, in log order."""

    train: list[tuple[int, float]]
    eval: list[tuple[int, float]]


def loss_rows(run_dir: str | Path) -> LossRows | None:
    """The training loss and held-out loss of a run, or None when it has no ``metrics.jsonl``."""
    if not (Path(run_dir) / METRICS_FILE).is_file():
        return None
    rows = read_metrics(run_dir)
    return LossRows(train=[(r["step"], r["loss"]) for r in rows if "loss" in r],
                    eval=[(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r])


def plot_loss_curve(metrics_path: str | Path, out_png: str | Path) -> Path:
    run_dir = Path(metrics_path).parent
    rows = loss_rows(run_dir)
    if rows is None:
        raise FileNotFoundError(f"{metrics_path} not found: nothing to plot")
    fig, ax = plotting.pyplot().subplots(figsize=(7, 4), dpi=110)
    if rows.train:
        ax.plot(*zip(*rows.train), label="train (masked tokens)", lw=1.2)
    if rows.eval:
        ax.plot(*zip(*rows.eval), "o-", label="held-out", lw=1.5, ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("MLM cross-entropy (nats)")
    return plotting.finish(fig, ax, f"{run_dir.name}: masked-LM loss", out_png)
