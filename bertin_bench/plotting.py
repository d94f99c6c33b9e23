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
