"""The study's figures: where each strategy takes its documents from, keep rate by source, and
pre-training loss curves (the task-score figure is the benchmark's comparison plot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertin_bench import plotting


def perplexity_histograms(samples: dict[str, dict], boundaries, out: Path) -> Path | None:
    """Perplexity distribution of the whole corpus and of each arm's kept documents (log scale),
    with the quartile boundaries: where each strategy takes its documents from."""
    plt = plotting.pyplot()
    arms = {a: s["histogram"] for a, s in samples.items() if s.get("histogram")}
    if not arms:
        return None
    first = next(iter(arms.values()))
    edges = np.linspace(first["log10_lo"], first["log10_hi"], first["bins"] + 1)
    centers = 10 ** ((edges[:-1] + edges[1:]) / 2)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    seen = np.asarray(first["seen"], dtype=float)
    ax.fill_between(centers, seen / seen.sum(), step="mid", alpha=0.2, color="grey", label="corpus (all scored)")
    for arm, h in arms.items():
        kept = np.asarray(h["kept"], dtype=float)
        if kept.sum():
            # Density over the corpus total, so the areas show the kept share (not re-normalised).
            ax.step(centers, kept / seen.sum(), where="mid", lw=1.6, label=f"{arm} (kept {kept.sum() / seen.sum():.0%})")
    ax.set_xscale("log")
    # Show only where the corpus has documents (the histogram spans 1 to 1e8).
    nonzero = np.flatnonzero(seen)
    ax.set_xlim(10 ** (edges[nonzero[0]] - 0.1), 10 ** (edges[nonzero[-1] + 1] + 0.1))
    top = ax.get_ylim()[1]
    for i, (q, name) in enumerate(((boundaries.q1, "Q1"), (boundaries.q2, "median"), (boundaries.q3, "Q3"))):
        ax.axvline(q, ls="--", lw=0.8, color="black")
        ax.text(q, top * (0.97 - 0.07 * i), f" {name}", fontsize=8, va="top")  # staggered: Q1/median are close
    ax.set_xlabel("document perplexity (KenLM, log scale)")
    ax.set_ylabel("share of corpus documents")
    return plotting.finish(fig, ax, "Which documents each sampling strategy keeps", out)


def kept_by_source(samples: dict[str, dict], out: Path) -> Path | None:
    """Keep rate per document source (news, tweets, lyrics, ...) for each arm: the quality signal
    perplexity sampling is meant to pick up."""
    plt = plotting.pyplot()
    arms = {a: s.get("by_source") or {} for a, s in samples.items()}
    sources = sorted({src for by in arms.values() for src in by})
    if not sources:
        return None
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(sources)), 4.5), dpi=110)
    width = 0.8 / max(1, len(arms))
    x = np.arange(len(sources))
    for i, (arm, by) in enumerate(arms.items()):
        rates = [by.get(src, {}).get("keep_rate") or 0.0 for src in sources]
        ax.bar(x + i * width - 0.4 + width / 2, rates, width, label=arm)
    ax.set_xticks(x, sources, rotation=20, ha="right")
    ax.set_ylabel("kept share of the source's documents")
    return plotting.finish(fig, ax, "Keep rate by source", out, grid_axis="y")


def loss_curves(run_dirs: dict[str, Path], out: Path) -> Path | None:
    """Held-out MLM loss (and training loss, faint) against steps, one line per arm."""
    from pretraining.plots import loss_rows

    plt = plotting.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    drawn = False
    for arm, run_dir in run_dirs.items():
        rows = loss_rows(run_dir)
        if rows is None:
            continue
        line = None
        if rows.eval:
            (line,) = ax.plot(*zip(*rows.eval), "o-", ms=3, lw=1.6, label=f"{arm} held-out")
            drawn = True
        if rows.train:
            ax.plot(*zip(*rows.train), lw=0.8, alpha=0.35, color=line.get_color() if line else None)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step (equal tokens per step for every arm)")
    ax.set_ylabel("MLM cross-entropy (nats)")
    return plotting.finish(fig, ax, "Pre-training loss by sampling strategy", out)


def forest_domains(domains, out: Path, *, reference: str, floor: str | None) -> Path | None:
    """Δ held-out MLM loss vs the reference per domain, 95% Multi-Bootstrap CIs; the floor hollow."""
    rows = [{"label": f"{r['source']} ({r['documents']})", "series": r["arm"], "delta": r["delta"],
             "low": r["ci_low"], "high": r["ci_high"], "hollow": r["arm"] == floor}
            for _, r in domains.iterrows() if r["arm"] != reference and r["arm"] != floor]
    if not rows:
        return None
    return plotting.forest(rows, out, title=f"Held-out MLM loss by domain: Δ vs {reference} (95% CI)",
                           xlabel=f"nats per predicted token, arm − {reference} (< 0: lower loss than {reference})")


def loss_by_domain(table, out: Path) -> Path | None:
    """Mean held-out MLM loss per domain and arm, error bars = std over pre-training seeds."""
    if table is None or table.empty:
        return None
    plt = plotting.pyplot()
    sources = sorted(table["source"].unique())
    arms = list(dict.fromkeys(table["arm"]))
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(sources)), 4.5), dpi=110)
    width = 0.8 / max(1, len(arms))
    x = np.arange(len(sources))
    for i, arm in enumerate(arms):
        sub = table[table["arm"] == arm].groupby("source")["loss"]
        means = sub.mean().reindex(sources)
        sds = sub.std(ddof=1).reindex(sources).fillna(0.0)
        ax.bar(x + i * width - 0.4 + width / 2, means, width, yerr=sds, capsize=2, label=arm)
    ax.set_xticks(x, sources, rotation=20, ha="right")
    ax.set_ylabel("MLM loss (nats per predicted token)")
    return plotting.finish(fig, ax, "Held-out MLM loss by domain (mean ± std over pre-training seeds)", out,
                           grid_axis="y")
