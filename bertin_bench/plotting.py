"""The figure plumbing every stage shares: a headless backend and an atomic PNG save."""

from __future__ import annotations

from pathlib import Path

from bertin_bench.io import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: figures are files here, never windows, and a
    machine without a display must not fail. Imported on call so commands start without it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out: str | Path, **savefig_kwargs) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", **savefig_kwargs)
    pyplot().close(fig)
    return out


def finish(fig, ax, title: str, out: str | Path, grid_axis: str = "both", legend: bool = True) -> Path:
    """The common end of a one-axis figure: title, legend, grid, tight layout, atomic save."""
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)
    ax.grid(axis=grid_axis, alpha=0.3)
    fig.tight_layout()
    return save(fig, out)


def forest(rows: list[dict], out: str | Path, *, title: str, xlabel: str) -> Path:
    """A forest plot: one group of rows per ``label`` (a task, a domain), one marker per ``series``
    (an arm) at ``delta`` with a horizontal ``low``..``high`` interval; ``hollow`` rows (the floor)
    get an open marker. A vertical line marks zero (no difference)."""
    plt = pyplot()
    labels = list(dict.fromkeys(r["label"] for r in rows))
    series = list(dict.fromkeys(r["series"] for r in rows))
    colors = {s: f"C{i % 10}" for i, s in enumerate(series)}
    step = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * max(1, len(labels)) * max(1, len(series)) ** 0.5 + 1), dpi=110)
    seen = set()
    for r in rows:
        y = labels.index(r["label"]) + (series.index(r["series"]) - (len(series) - 1) / 2) * step
        lo, hi = r.get("low"), r.get("high")
        if lo is not None and hi is not None and lo == lo and hi == hi:  # NaN-safe
            ax.plot([lo, hi], [y, y], color=colors[r["series"]], lw=1.4)
        ax.plot([r["delta"]], [y], "o", ms=6, color=colors[r["series"]],
                mfc="white" if r.get("hollow") else colors[r["series"]],
                label=None if r["series"] in seen else r["series"] + (" (floor)" if r.get("hollow") else ""))
        seen.add(r["series"])
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    return finish(fig, ax, title, out, grid_axis="x")
