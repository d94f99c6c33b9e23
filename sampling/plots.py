"""The perplexity histogram: seen vs kept documents on a log axis, the quartile boundaries, and the
strategy's keep-probability curve on a second axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertin_bench import plotting
from sampling.histogram import bin_edges


def perplexity_histogram(path, hist_seen, hist_kept, *, boundaries=None, strategy=None, title: str = "") -> Path:
    plt = plotting.pyplot()
    edges = bin_edges()
    seen = np.asarray(hist_seen, dtype=float)
    kept = np.asarray(hist_kept, dtype=float)
    nz = np.nonzero(seen)[0]
    # Show the populated range only, coarsened to ~80 bars so the shape is readable.
    lo, hi = max(nz[0] - 5, 0), min(nz[-1] + 6, len(seen))
    step = max(1, (hi - lo) // 80)
    idx = np.arange(lo, hi, step)
    seen_c = np.add.reduceat(seen[lo:hi], idx - lo)
    kept_c = np.add.reduceat(kept[lo:hi], idx - lo)
    left, right = edges[idx], edges[np.minimum(idx + step, len(edges) - 1)]

    fig, ax = plt.subplots(figsize=(9, 5))
    ax.bar(left, seen_c, width=right - left, align="edge", color="#bbbbbb", label=f"seen ({int(seen.sum()):,})")
    ax.bar(left, kept_c, width=right - left, align="edge", color="#1f77b4", alpha=0.8, label=f"kept ({int(kept.sum()):,})")
    ax.set_xscale("log")
    ax.set_xlabel("perplexity")
    ax.set_ylabel("documents")
    if boundaries is not None:
        top = ax.get_ylim()[1]
        for q, name, y in zip(boundaries.as_tuple(), ("Q1", "median", "Q3"), (0.97, 0.87, 0.77)):
            ax.axvline(q, color="k", ls="--", lw=1)
            ax.text(q, top * y, f" {name} {q:,.0f}", va="top", fontsize=8)  # staggered: quartiles can be close
    if strategy is not None:
        ax2 = ax.twinx()
        xs = np.geomspace(left[0], right[-1], 400)
        ax2.plot(xs, strategy.keep_probability(xs), color="#d62728", lw=2, label="keep probability")
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("keep probability", color="#d62728")
        ax2.legend(loc="upper right")
        title = f"{title}\n{strategy.name}, factor={strategy.factor:.4g}"
    ax.legend(loc="upper left")
    ax.set_title(title, fontsize=10)
    # fixed margins, not plotting.finish(): its tight_layout costs ~0.5 s, every run draws this figure
    fig.subplots_adjust(left=0.08, right=0.92, bottom=0.11, top=0.9)
    return plotting.save(fig, path, dpi=110)
