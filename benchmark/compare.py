"""``compare_models``: per-task side-by-side of models, the difference to the first model, and its
significance, from result files only.

Two tests, named in every output so a reader knows which one a p-value comes from:
- ``bootstrap``: paired bootstrap over test examples. Each resample draws test examples with
  replacement (the same draw for both models); a model's score on a resample is its main metric
  recomputed from the stored per-example predictions, averaged over its seeds. The p-value is
  two-sided: 2 x the share of resampled differences on the other side of zero. This captures test-set
  sampling noise, not seed noise.
- ``welch``: Welch's t-test over the per-seed main scores (needs >= 2 seeds per model). This captures
  seed noise, not test-set noise.
Only runs with the same task version, protocol and subsampling are compared.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from bertin_bench import plotting
from bertin_bench.io import write_text_atomic

from benchmark import metrics, results

log = logging.getLogger(__name__)

TESTS = ("bootstrap", "welch", "both")


def _runs_by_model(results_dir) -> dict:
    """{model name: {setting key: [FinetuneResult, ...]}}"""
    out: dict = defaultdict(lambda: defaultdict(list))
    for _, res in results.iter_results(results_dir):
        out[res.model.name][res.setting_key].append(res)
    return out


def _match(name: str, available: list[str]) -> str:
    if name in available:
        return name
    by_slug = {results.slug(a): a for a in available}
    if results.slug(name) in by_slug:
        return by_slug[results.slug(name)]
    raise KeyError(f"no results for model {name!r}; models with results: {', '.join(sorted(available)) or '(none)'}")


def _stats(res: results.FinetuneResult) -> tuple[np.ndarray, np.ndarray]:
    gold, pred = metrics.unpack_predictions(res.test.predictions)
    labels = tuple(res.task.labels)
    flat_gold = np.concatenate([np.asarray(g) for g in gold]) if res.task.type == "token-classification" else np.asarray(gold)
    return metrics.example_stats(res.task.type, labels, gold, pred), flat_gold


def paired_bootstrap(runs_a: list[results.FinetuneResult], runs_b: list[results.FinetuneResult], n_boot: int = 1000,
                     seed: int = 0) -> dict:
    """Bootstrap distribution of mean-over-seeds(B) - mean-over-seeds(A) on resampled test examples."""
    metric = runs_a[0].task.main_score
    sa = [_stats(r) for r in runs_a]
    sb = [_stats(r) for r in runs_b]
    gold = sa[0][1]
    if any(len(g) != len(gold) or not np.array_equal(g, gold) for _, g in sa + sb):
        return {"p": math.nan, "note": "test examples differ between runs; bootstrap not applicable"}
    n = sa[0][0].shape[0]
    rng = np.random.default_rng(seed)
    # Multinomial counts per resample: sums over a resample = counts @ per-example statistics.
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)

    def score(stats_list):
        return np.mean([metrics.metric_from_stats((counts @ s)[:, None, :], metric) for s, _ in stats_list], axis=0)

    diff = score(sb) - score(sa)
    observed = float(np.mean([metrics.metric_from_stats(s[None], metric)[0] for s, _ in sb]) -
                     np.mean([metrics.metric_from_stats(s[None], metric)[0] for s, _ in sa]))
    p = min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0)))
    return {"p": float(p), "diff": observed, "ci_low": float(np.percentile(diff, 2.5)),
            "ci_high": float(np.percentile(diff, 97.5)), "n_boot": n_boot, "note": ""}


def welch(a: list[float], b: list[float]) -> float:
    if len(a) < 2 or len(b) < 2:
        return math.nan
    from scipy import stats

    if np.std(a) == 0 and np.std(b) == 0:
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    import warnings

    with warnings.catch_warnings():
        # scipy warns about precision when seeds give nearly identical scores; the p-value is still usable.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(b, a, equal_var=False).pvalue)


def compare_models(models: list[str], results_dir: str | Path = "results", out_dir: str | Path | None = None,
                   test: str = "both", n_boot: int = 1000, seed: int = 0):
    """Compare ``models`` (first = reference) on every task setting they all have results for.
    Writes compare.csv, compare.md and compare.png to ``out_dir`` (default
    ``<results_dir>/compare/<A>_vs_<B>...``) and returns the table."""
    import pandas as pd

    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)}")
    if len(models) < 2:
        raise ValueError("compare needs at least two models")
    runs = _runs_by_model(results_dir)
    names = [_match(m, list(runs)) for m in models]
    common = set.intersection(*(set(runs[n]) for n in names))
    if not common:
        raise ValueError(
            f"{' and '.join(names)} have no task in common with the same version, protocol and subsampling; "
            + "; ".join(f"{n}: {', '.join(sorted(runs[n]))}" for n in names)
        )
    rows = []
    for setting in sorted(common):
        ref = sorted(runs[names[0]][setting], key=lambda r: r.seed)
        for name in names:
            rs = sorted(runs[name][setting], key=lambda r: r.seed)
            scores = [r.main_score for r in rs]
            row = {
                "task": rs[0].task.name, "setting": setting, "metric": rs[0].task.main_score,
                "model": name, "mean": float(np.mean(scores)), "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
                "n": len(scores), "diff_vs_ref": float(np.mean(scores) - np.mean([r.main_score for r in ref])),
                "p_bootstrap": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_welch": math.nan, "note": "",
            }
            if name != names[0]:
                if test in ("bootstrap", "both"):
                    bs = paired_bootstrap(ref, rs, n_boot=n_boot, seed=seed)
                    row.update(p_bootstrap=bs["p"], ci_low=bs.get("ci_low", math.nan), ci_high=bs.get("ci_high", math.nan), note=bs["note"])
                if test in ("welch", "both"):
                    row["p_welch"] = welch([r.main_score for r in ref], scores)
                    if row["n"] < 2 or len(ref) < 2:
                        row["note"] = (row["note"] + "; " if row["note"] else "") + "welch needs >= 2 seeds per model"
            rows.append(row)
    df = pd.DataFrame(rows)
    out = Path(out_dir) if out_dir else Path(results_dir) / "compare" / "_vs_".join(results.slug(n) for n in names)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "compare.csv", df.to_csv(index=False))
    write_text_atomic(out / "compare.md", to_markdown(df, names, test, n_boot))
    plot(df, names, out / "compare.png")
    return df


def to_markdown(df, names: list[str], test: str, n_boot: int) -> str:
    tests = {
        "bootstrap": f"paired bootstrap over test examples ({n_boot} resamples, two-sided; 95% CI of the difference)",
        "welch": "Welch's t-test over per-seed scores (two-sided)",
    }
    used = [tests[t] for t in ("bootstrap", "welch") if test in (t, "both")]
    lines = [
        f"# Comparison: {' vs '.join(names)}",
        "",
        f"Reference: **{names[0]}**. Scores × 100, mean ± std over seeds. Significance: {'; '.join(used)}.",
        "",
        "| task (setting) | model | score | n | Δ vs ref | 95% CI of Δ | p (bootstrap) | p (Welch) | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        ref = r["model"] == names[0]
        ci = "" if math.isnan(r["ci_low"]) else f"[{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}]"
        lines.append(
            f"| {r['setting']} ({r['metric']}) | {r['model']} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {r['n']} | "
            f"{'—' if ref else f'{100 * r.diff_vs_ref:+.2f}'} | {ci} | "
            f"{_fmt_p(r['p_bootstrap'], n_boot)} | "
            f"{'' if math.isnan(r['p_welch']) else f'{r.p_welch:.3g}'} | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


def _fmt_p(p: float, n_boot: int) -> str:
    if math.isnan(p):
        return ""
    # No resample crossed zero: the bootstrap only bounds p by its resolution.
    return f"< {1 / n_boot:.2g}" if p == 0 else f"{p:.3g}"


def plot(df, names: list[str], path: Path) -> Path:
    settings = list(dict.fromkeys(df["setting"]))
    width = 0.8 / len(names)
    fig, ax = plotting.pyplot().subplots(figsize=(max(6, 1.6 * len(settings) * len(names) / 2 + 3), 4.5))
    x = np.arange(len(settings))
    for i, name in enumerate(names):
        sub = df[df["model"] == name].set_index("setting").reindex(settings)
        ax.bar(x + (i - (len(names) - 1) / 2) * width, 100 * sub["mean"], width, yerr=100 * sub["std"],
               capsize=3, label=name)
    ax.set_xticks(x, [s.split("@")[0] + "\n" + " ".join(s.split(" ")[1:]) for s in settings], fontsize=8)
    ax.set_ylabel("main score × 100 (mean ± std over seeds)")
    ax.set_title("Fine-tuning scores by task")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return plotting.save(fig, path, dpi=120)
