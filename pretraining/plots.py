"""``loss_curve.png``: training and held-out MLM loss against steps, from ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

from bertin_bench.io import atomic_path


METRICS_FILE = "metrics.jsonl"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` (training rows have ``loss``, eval rows ``eval_loss``)."""
    path = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_loss_curve(metrics_path: str | Path, out_png: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(Path(metrics_path).parent)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train (masked tokens)", lw=1.2)
    if evals:
        ax.plot(*zip(*evals), "o-", label="held-out", lw=1.5, ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("MLM cross-entropy (nats)")
    ax.set_title(f"{Path(metrics_path).parent.name}: masked-LM loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(out_png)
