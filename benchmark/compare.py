"""``compare_arms``: per task, each arm (a set of pre-trained models, one per pre-training seed)
against a reference arm and against the never-pre-trained floor, from result files only.

The main test is the **Multi-Bootstrap** (:mod:`benchmark.multibootstrap`): it resamples
pre-training seeds and test examples together, so a difference is significant only when it beats
the model-to-model variance that a data-selection strategy must beat. Its p-values are
Holm-adjusted over the table's comparisons with the reference, and separately over those with the
floor (a study adjusts over all its tasks and domains together: ``study.report``). With one pre-training seed per arm the table says
"fixed checkpoints: pre-training variance not measured" and flags nothing.

Two older tests stay as clearly labelled secondary columns; both hold every checkpoint fixed:
- ``p_fixed_bootstrap``: paired bootstrap over test examples (the same draw for both arms), every
  fine-tuning run pooled. Test-set noise only.
- ``p_welch``: Welch's t-test over the per-run scores. Fine-tuning-seed noise only.
Only runs with the same task version, protocol and subsampling are compared.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bertin_bench import plotting
from bertin_bench.io import write_text_atomic

from benchmark import metrics, results
from benchmark.multibootstrap import FIXED, holm, multibootstrap, snr

log = logging.getLogger(__name__)

NO_SIGNAL = "no signal at this scale"
_SEED_SUFFIX = re.compile(r"^(?P<arm>.+)-s(?P<seed>\d+)$")


def runs_by_model(results_dir) -> dict:
    """{model name: {setting key: [FinetuneResult, ...]}}, keyed by model identity: two different
    models recorded under one name are two entries (``name#<identity>``), never one merged row."""
    out: dict = {}
    for name, group in results.group_by_model(results.iter_results(results_dir)).items():
        by_setting: dict = defaultdict(list)
        for res in group.results:
            by_setting[res.setting_key].append(res)
        out[name] = by_setting
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


def pretrain_seed(res: results.FinetuneResult):
    """The pre-training seed of a result's model: the export info's ``training.seed`` (our
    checkpoints), else an ``-sN`` name suffix, else the model name (a model of its own)."""
    info = res.model.pretraining or {}
    seed = ((info.get("config") or {}).get("training") or {}).get("seed")
    if seed is not None:
        return int(seed)
    m = _SEED_SUFFIX.match(res.model.name)
    return int(m.group("seed")) if m else res.model.name


def resolve_arms(specs: Sequence[str], available: Sequence[str]) -> dict[str, list[str]]:
    """Arms from command-line specs: ``NAME``, a glob (``small-random-s*``: every pre-training seed
    of an arm), or ``ARM=GLOB``. An arm of ``X-s*`` is called ``X``."""
    arms: dict[str, list[str]] = {}
    for spec in specs:
        label, _, pattern = spec.rpartition("=")
        if any(ch in pattern for ch in "*?["):
            found = sorted(n for n in available if fnmatch.fnmatchcase(n, pattern))
            if not found:
                raise KeyError(f"no model with results matches {pattern!r}; models with results: "
                               f"{', '.join(sorted(available)) or '(none)'}")
            label = label or re.sub(r"-s\*$", "", pattern).rstrip("-*?") or pattern
        else:
            found = [_match(pattern, list(available))]
            label = label or found[0]
        if label in arms:
            raise ValueError(f"two arms are called {label!r}: name them ARM=GLOB")
        arms[label] = found
    return arms


def _arm_runs(runs_by_model: dict, models: Sequence[str], setting: str) -> dict:
    """{pre-training seed: [FinetuneResult of each fine-tuning seed]} of one arm on one setting."""
    by_seed: dict = defaultdict(list)
    for model in models:
        for res in sorted(runs_by_model[model].get(setting, []), key=lambda r: r.seed):
            by_seed[pretrain_seed(res)].append(res)
    return dict(by_seed)


def _metric(name: str):
    return lambda summed: metrics.metric_from_stats(summed[..., None, :], name)


def _same_test_items(arms: Mapping[str, dict]) -> bool:
    golds = [_stats(r)[1] for by_seed in arms.values() for runs in by_seed.values() for r in runs]
    return all(len(g) == len(golds[0]) and np.array_equal(g, golds[0]) for g in golds)


def _seed_means(by_seed: dict) -> list[float]:
    return [float(np.mean([r.main_score for r in runs])) for runs in by_seed.values()]


def compare_arms(arms: Mapping[str, Sequence[str]], results_dir: str | Path = "results",
                 out_dir: str | Path | None = None, *, reference: str | None = None, floor: str | None = None,
                 controls: Sequence[str] = (), nboot: int = 1000, seed: int = 0, alpha: float = 0.05):
    """Compare every arm with ``reference`` (default: the first non-control arm) and with the
    ``floor`` (a never-pre-trained arm) on every task setting all arms have results for.

    ``arms`` maps an arm name to its models (one per pre-training seed). Writes compare.csv,
    compare.md, signal.csv and the forest plot compare.png to ``out_dir`` (default
    ``<results_dir>/compare/<A>_vs_<B>...``); returns (comparison table, task-signal table).
    """
    import pandas as pd

    if len(arms) < 2:
        raise ValueError("compare needs at least two arms")
    if nboot < 100:
        raise ValueError(f"nboot must be >= 100 (got {nboot}): fewer draws cannot resolve p < 0.05")
    controls = set(controls) | ({floor} if floor else set())
    for name in [reference, floor, *controls]:
        if name is not None and name not in arms:
            raise KeyError(f"{name!r} is not one of the arms {list(arms)}")
    strategies = [a for a in arms if a not in controls]
    reference = reference or (strategies[0] if strategies else next(iter(arms)))
    runs = runs_by_model(results_dir)
    for arm, models in arms.items():
        for m in models:
            if m not in runs:
                raise KeyError(f"arm {arm}: no results for model {m!r}")
    settings = set.intersection(*({s for m in models for s in runs[m]} for models in arms.values()))
    if not settings:
        raise ValueError("the arms have no task in common with the same version, protocol and subsampling: "
                         + "; ".join(f"{a}: {', '.join(sorted({s for m in ms for s in runs[m]}))}" for a, ms in arms.items()))

    rows, signal = [], []
    for setting in sorted(settings):
        by_arm = {a: _arm_runs(runs, models, setting) for a, models in arms.items()}
        first = next(iter(by_arm[reference].values()))[0]
        metric = first.task.main_score
        same_items = _same_test_items(by_arm)
        stats = {a: {s: [_stats(r)[0] for r in rs] for s, rs in by_seed.items()} for a, by_seed in by_arm.items()}
        for arm, by_seed in by_arm.items():
            seed_means = _seed_means(by_seed)
            row = {"task": first.task.name, "setting": setting, "metric": metric, "split": "test",
                   "protocol": first.task.protocol, "arm": arm,
                   "control": "floor" if arm == floor else ("control" if arm in controls else ""),
                   "mean": float(np.mean(seed_means)),
                   "sd_pretrain": float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else math.nan,
                   "pretrain_seeds": len(by_seed), "finetune_runs": sum(len(r) for r in by_seed.values())}
            for versus, prefix in ((reference, ""), (floor, "floor_")):
                keys = ("delta", "ci_low", "ci_high", "mdd", "p")
                row.update({prefix + k: math.nan for k in keys})
                row[prefix + "note"] = ""
                if versus is None or versus == arm:
                    continue
                if not same_items:
                    row[prefix + "note"] = "test examples differ between runs: not comparable"
                    continue
                mb = multibootstrap(stats[versus], stats[arm], _metric(metric), nboot=nboot, seed=seed)
                row.update({prefix + "delta": mb.delta, prefix + "ci_low": mb.ci_low, prefix + "ci_high": mb.ci_high,
                            prefix + "mdd": mb.mdd, prefix + "p": mb.p, prefix + "note": mb.note})
            # secondary, fixed-checkpoint tests against the reference (labelled as such)
            row["p_fixed_bootstrap"] = row["p_welch"] = math.nan
            if arm != reference and same_items:
                pooled_ref = [r for rs in by_arm[reference].values() for r in rs]
                pooled = [r for rs in by_seed.values() for r in rs]
                row["p_fixed_bootstrap"] = paired_bootstrap(pooled_ref, pooled, n_boot=nboot, seed=seed)["p"]
                row["p_welch"] = welch([r.main_score for r in pooled_ref], [r.main_score for r in pooled])
            rows.append(row)
        signal.append({"task": first.task.name, "setting": setting, "metric": metric, "protocol": first.task.protocol,
                       "snr": snr({a: _seed_means(by_arm[a]) for a in strategies}),
                       "pretrain_seeds": min(len(by_arm[a]) for a in arms),
                       "test_examples": first.task.sizes.get("test")})
    df = pd.DataFrame(rows)
    # Holm over the family of this table: every arm x task against the reference, and against the floor
    for prefix in ("", "floor_"):
        df[prefix + "p_holm"] = holm(list(df[prefix + "p"]))
        df[prefix + "significant"] = [
            bool(not math.isnan(p) and p < alpha) for p in df[prefix + "p_holm"]]
    sig = pd.DataFrame(signal)
    sig["mdd"] = [float(np.nanmedian(df[(df.setting == s) & (df.arm != reference)]["mdd"]))
                  if (df[(df.setting == s) & (df.arm != reference)]["mdd"].notna().any()) else math.nan
                  for s in sig["setting"]]
    task_verdicts(df, sig, floor)
    out = Path(out_dir) if out_dir else Path(results_dir) / "compare" / "_vs_".join(results.slug(a) for a in arms)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "compare.csv", df.to_csv(index=False))
    write_text_atomic(out / "signal.csv", sig.to_csv(index=False))
    write_text_atomic(out / "compare.md", to_markdown(df, sig, reference=reference, floor=floor, nboot=nboot, alpha=alpha))
    plot(df, out / "compare.png", reference=reference, floor=floor)
    return df, sig


def task_verdicts(df, sig, floor: str | None) -> None:
    """Set ``beats_floor`` and ``verdict`` of the task-signal table ``sig`` from the comparisons in
    ``df`` (its ``floor_significant`` column: Holm over this table, or over a whole study when the
    study has re-adjusted it)."""
    sig["beats_floor"] = [_beats_floor(df, s, floor) for s in sig["setting"]]
    sig["verdict"] = [_verdict(row, floor) for _, row in sig.iterrows()]


def _beats_floor(df, setting: str, floor: str | None):
    """Some strategy arm is significantly above the floor on this task (Holm-adjusted); None
    without a floor or without replicated seeds (then nothing can be said)."""
    if floor is None:
        return None
    sub = df[(df.setting == setting) & (df.control == "")]
    if sub["floor_p"].isna().all():
        return None
    return bool(((sub["floor_delta"] > 0) & sub["floor_significant"]).any())


def _verdict(row, floor: str | None) -> str:
    if floor is None:
        return "no floor in this comparison"
    if row["beats_floor"] is None:
        return "not replicated: " + FIXED
    return "signal" if row["beats_floor"] else NO_SIGNAL


def compare_models(models: list[str], results_dir: str | Path = "results", out_dir: str | Path | None = None,
                   nboot: int = 1000, seed: int = 0, **kwargs):
    """Compare models (or ``ARM=GLOB`` / glob specs, see :func:`resolve_arms`); the first is the
    reference. A model alone is an arm of one pre-training seed."""
    if len(models) < 2:
        raise ValueError("compare needs at least two models")
    available = list(runs_by_model(results_dir))
    arms = resolve_arms(models, available)
    return compare_arms(arms, results_dir, out_dir, nboot=nboot, seed=seed, **kwargs)


def _fmt_delta(r, prefix: str) -> tuple[str, str, str]:
    if math.isnan(r[prefix + "delta"]):
        return "—", "", ""
    ci = f"[{100 * r[prefix + 'ci_low']:+.2f}, {100 * r[prefix + 'ci_high']:+.2f}]"
    mdd = "" if math.isnan(r[prefix + "mdd"]) else f"{100 * r[prefix + 'mdd']:.2f}"
    return f"{100 * r[prefix + 'delta']:+.2f}", ci, mdd


def to_markdown(df, sig, *, reference: str, floor: str | None, nboot: int, alpha: float) -> str:
    lines = [
        f"# Comparison against **{reference}**" + (f" and the floor **{floor}**" if floor else ""),
        "",
        f"Scores × 100 on the **test** split: mean over pre-training seeds of the mean over fine-tuning seeds, "
        f"± std over pre-training seeds. Δ = arm − reference. Main test: **Multi-Bootstrap** over pre-training "
        f"seeds × test examples ({nboot} draws, paired seeds when shared; 95% percentile CI; two-sided p), "
        + (f"Holm–Bonferroni-adjusted over the {int(df['p'].notna().sum())} comparisons with the reference"
           + (f" and, separately, the {int(df['floor_p'].notna().sum())} with the floor" if floor else "")
           + f"; significant = adjusted p < {alpha}" if df["p"].notna().any() else
           "no comparison is testable: one pre-trained model per arm (fixed checkpoints; the CIs below are "
           "test-set noise only)")
        + ". MDD = minimum detectable difference at 80% power "
          "(2.8 × bootstrap SE). Secondary columns hold every checkpoint fixed (test-set noise only, "
          "fine-tuning noise only) and cannot see pre-training variance.",
        "",
        "| task (protocol) | arm | score | seeds (pre-train / runs) | Δ vs ref | 95% CI | MDD | p | p (Holm) |"
        + (" Δ vs floor | 95% CI | p (Holm) |" if floor else "")
        + " p fixed-ckpt bootstrap | p Welch (runs) | note |",
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if floor else "") + "---|---|---|",
    ]
    for _, r in df.iterrows():
        d, ci, mdd = _fmt_delta(r, "")
        sd = "" if math.isnan(r["sd_pretrain"]) else f" ± {100 * r['sd_pretrain']:.2f}"
        name = r["arm"] + (f" ({r['control']})" if r["control"] else "")
        star = " *" if r["significant"] else ""
        cells = [f"{r['task']} ({r['protocol']}, {r['metric']})", name, f"{100 * r['mean']:.2f}{sd}",
                 f"{r['pretrain_seeds']} / {r['finetune_runs']}", d + star, ci, mdd, _fmt_p(r["p"], nboot),
                 _fmt_p(r["p_holm"], nboot)]
        if floor:
            fd, fci, _ = _fmt_delta(r, "floor_")
            cells += [fd + (" *" if r["floor_significant"] else ""), fci, _fmt_p(r["floor_p_holm"], nboot)]
        notes = "; ".join(n for n in dict.fromkeys([r["note"], r["floor_note"]]) if n)
        cells += [_fmt_p(r["p_fixed_bootstrap"], nboot), "" if math.isnan(r["p_welch"]) else f"{r['p_welch']:.3g}", notes]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Task signal", "",
              "Does pre-training move the task at this scale? A task where no strategy arm beats the floor "
              "(Holm-adjusted Multi-Bootstrap) has **no signal at this scale**: strategy differences are not read "
              "from it. SNR = std of the strategy arms' means ÷ pooled std across pre-training seeds.",
              "", "| task (protocol) | verdict | SNR | median MDD × 100 | pre-training seeds | test examples |",
              "|---|---|---|---|---|---|"]
    for _, r in sig.iterrows():
        snr_ = "" if math.isnan(r["snr"]) else f"{r['snr']:.2f}"
        mdd = "" if math.isnan(r["mdd"]) else f"{100 * r['mdd']:.2f}"
        lines.append(f"| {r['task']} ({r['protocol']}) | {r['verdict']} | {snr_} | {mdd} | {r['pretrain_seeds']} | "
                     f"{r['test_examples']} |")
    if (df["protocol"] == "dev-train").any():
        lines += ["", "Protocol deviation: `dev-train` tasks have no training split offline; they train on the "
                      "validation split minus a hashed held-out slice and score the test split, so their numbers are "
                      "not comparable with published ones."]
    lines += ["", "What this does not show: effects smaller than the MDD; anything at another model or data scale; "
                  "anything about tasks marked no signal."]
    return "\n".join(lines) + "\n"


def _fmt_p(p: float, n_boot: int) -> str:
    if math.isnan(p):
        return ""
    # No resample crossed zero: the bootstrap only bounds p by its resolution.
    return f"< {1 / n_boot:.2g}" if p == 0 else f"{p:.3g}"


def plot(df, path: Path, *, reference: str, floor: str | None) -> Path:
    """Forest plot: Δ vs the reference with its 95% CI, one row per task, one marker per arm; the
    floor's Δ is drawn hollow, so a reader sees at once whether the arms clear it."""
    rows = []
    for _, r in df.iterrows():
        if r["arm"] == reference:
            continue
        rows.append({"label": f"{r['task']} ({r['metric']})", "series": r["arm"], "delta": 100 * r["delta"],
                     "low": 100 * r["ci_low"], "high": 100 * r["ci_high"], "hollow": r["arm"] == floor})
    return plotting.forest(rows, path, title=f"Δ vs {reference} (95% Multi-Bootstrap CI)",
                           xlabel=f"test score × 100, arm − {reference}")
