"""What a finished study publishes: the leaderboard, the Multi-Bootstrap comparisons of tasks and
domains (one Holm family for the whole study), the per-domain table, figures, ``evidence.md`` and
``study.json``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from bertin_bench.io import write_json_atomic, write_text_atomic
from bertin_bench.provenance import environment, hash_jsonable
from study.config import CONTROL, FLOOR

if TYPE_CHECKING:
    from study.run import Study

# Machine-local paths a summary carries; study.json is published, so it keeps only the numbers.
_LOCAL_KEYS = ("run_dir", "model_dir", "final_checkpoint")


def write_report(study: "Study", boundaries, samples: dict, pretrained: dict, doc_stats: dict, docs: list[dict],
                 seconds: float) -> dict:
    from benchmark.compare import compare_arms, task_verdicts
    from benchmark.leaderboard import build_leaderboard, wide

    from study import plots

    cfg, lay = study.cfg, study.layout
    seeds = cfg.pretraining.seed_list
    strategies = [a for a in cfg.arms if a not in cfg.controls]
    reference = strategies[0]
    floor = FLOOR if FLOOR in cfg.arms else None
    arms = {arm: [cfg.model_name(arm, s) for s in seeds] for arm in cfg.arms}

    # Only this study's models: reported rows of full-size models would not be comparable.
    board = build_leaderboard(lay.results, group=cfg.benchmark.group, include_reported=False)
    tasks, signal = compare_arms(arms, lay.results, out_dir=lay.comparison_dir, reference=reference, floor=floor,
                                 controls=cfg.controls, nboot=cfg.nboot, alpha=cfg.alpha)
    domains = domain_table(doc_stats, docs, cfg, reference=reference, floor=floor) if doc_stats else None
    by_source = heldout_by_source(doc_stats, docs) if doc_stats else None
    if by_source is not None:
        write_text_atomic(lay.heldout_by_source_csv, by_source.to_csv(index=False))
    study_family(tasks, domains, alpha=cfg.alpha)
    task_verdicts(tasks, signal, floor)  # the verdicts from the study-wide adjustment
    write_text_atomic(lay.comparison_dir / "compare.csv", tasks.to_csv(index=False))
    write_text_atomic(lay.comparison_dir / "signal.csv", signal.to_csv(index=False))
    if domains is not None:
        write_text_atomic(lay.domains_csv, domains.to_csv(index=False))
    write_text_atomic(lay.evidence_md, evidence_markdown(cfg, tasks, signal, domains, reference=reference, floor=floor))
    _mark_signal(lay.leaderboard_md, signal)

    units = {f"{arm}-s{seed}": p for (arm, seed), p in pretrained.items()}
    figs = {
        "perplexity": plots.perplexity_histograms(samples, boundaries, lay.figure("perplexity_by_strategy")),
        "sources": plots.kept_by_source(samples, lay.figure("kept_share_by_source")),
        "loss": plots.loss_curves({u: p["run_dir"] for u, p in units.items() if not p.get("untrained")},
                                  lay.figure("pretraining_loss")),
        "forest_tasks": lay.comparison_png,
        "forest_domains": plots.forest_domains(domains, lay.figure("forest_domains"), reference=reference, floor=floor)
        if domains is not None else None,
        "loss_by_domain": plots.loss_by_domain(by_source, lay.figure("loss_by_domain"))
        if by_source is not None else None,
    }
    report = {
        "study": cfg.name,
        "config": cfg.to_dict(),
        "config_hash": hash_jsonable(cfg.to_dict()),
        "boundaries": {"q1": boundaries.q1, "q2": boundaries.q2, "q3": boundaries.q3},
        "samples": samples,
        "pretraining": {u: {k: v for k, v in p.items() if k not in _LOCAL_KEYS} for u, p in units.items()},
        "reference": reference,
        "floor": floor,
        "task_signal": signal.to_dict(orient="records"),
        "leaderboard": str(lay.leaderboard_md),
        "comparison": str(lay.comparison_md),
        "evidence": str(lay.evidence_md),
        "figures": {k: str(v) for k, v in figs.items() if v},
        "provenance": environment(),
        "leaderboard_rows": len(wide(board, cfg.benchmark.group)["rows"]),
        "seconds": round(seconds, 1),
    }
    write_json_atomic(lay.study_json, report)
    return report


# -- per-domain tables ------------------------------------------------------------------------------

def heldout_by_source(doc_stats: dict, docs: list[dict]):
    """One row per (arm, pre-training seed, source): documents, predicted tokens, MLM loss (nats per
    predicted token) and accuracy, on the same documents and masks for every model."""
    import pandas as pd

    sources = np.array([d["source"] for d in docs])
    rows = []
    for (arm, seed), stats in doc_stats.items():
        for source in sorted(set(sources)):
            s = stats[sources == source].sum(axis=0)
            rows.append({"arm": arm, "pretrain_seed": seed, "source": source,
                         "documents": int((sources == source).sum()), "tokens": int(s[1]),
                         "loss": float(s[0] / max(s[1], 1)), "accuracy": float(s[2] / max(s[1], 1))})
    return pd.DataFrame(rows)


def domain_table(doc_stats: dict, docs: list[dict], cfg, *, reference: str, floor: str | None):
    """Multi-Bootstrap of the per-domain MLM loss, over documents x pre-training seeds: each arm
    against the reference and the floor. Lower loss is better, so a negative Δ favours the arm."""
    import pandas as pd

    from benchmark.multibootstrap import mean_metric, multibootstrap

    loss = mean_metric(0, 1)
    sources = np.array([d["source"] for d in docs])
    by_arm: dict = {}
    for (arm, seed), stats in doc_stats.items():
        by_arm.setdefault(arm, {})[seed] = stats
    rows = []
    for source in sorted(set(sources)):
        pick = sources == source
        arms = {arm: {seed: [stats[pick]] for seed, stats in seeds.items()} for arm, seeds in by_arm.items()}
        for arm, runs in arms.items():
            seed_losses = [float(loss(r[0].sum(axis=0))) for r in runs.values()]
            row = {"source": source, "documents": int(pick.sum()), "arm": arm,
                   "control": "floor" if arm == floor else ("control" if arm == CONTROL else ""),
                   "loss": float(np.mean(seed_losses)),
                   "sd_pretrain": float(np.std(seed_losses, ddof=1)) if len(seed_losses) > 1 else math.nan,
                   "pretrain_seeds": len(runs)}
            for versus, prefix in ((reference, ""), (floor, "floor_")):
                row.update({prefix + k: math.nan for k in ("delta", "ci_low", "ci_high", "mdd", "p")})
                row[prefix + "note"] = ""
                if versus is None or versus == arm:
                    continue
                mb = multibootstrap(arms[versus], runs, loss, nboot=cfg.nboot, seed=0)
                row.update({prefix + "delta": mb.delta, prefix + "ci_low": mb.ci_low, prefix + "ci_high": mb.ci_high,
                            prefix + "mdd": mb.mdd, prefix + "p": mb.p, prefix + "note": mb.note})
            rows.append(row)
    return pd.DataFrame(rows)


def study_family(tasks, domains, *, alpha: float) -> None:
    """Holm–Bonferroni over every comparison of the study (tasks and domains x arms), separately for
    the comparisons with the reference and with the floor; adds ``p_holm_study`` and
    ``significant`` columns in place."""
    from benchmark.multibootstrap import holm

    tables = [t for t in (tasks, domains) if t is not None]
    for prefix in ("", "floor_"):
        pooled = [p for t in tables for p in t[prefix + "p"]]
        adjusted = holm(pooled)
        start = 0
        for t in tables:
            part = adjusted[start:start + len(t)]
            start += len(t)
            t[prefix + "p_holm_study"] = part
            t[prefix + "significant"] = [bool(not math.isnan(p) and p < alpha) for p in part]


# -- evidence.md ------------------------------------------------------------------------------------

def _fmt(x: float, scale: float = 1.0, signed: bool = True, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{scale * x:+.{digits}f}" if signed else f"{scale * x:.{digits}f}"


def _p(p: float) -> str:
    return "" if p is None or math.isnan(p) else f"{p:.3g}"


def evidence_markdown(cfg, tasks, signal, domains, *, reference: str, floor: str | None) -> str:
    seeds = cfg.pretraining.seed_list
    n_tests = int(tasks["p"].notna().sum() + (domains["p"].notna().sum() if domains is not None else 0))
    lines = [f"# Study {cfg.name}: the evidence", "",
             f"Unit of replication: the pre-trained model, {len(seeds)} pre-training seed(s) per arm "
             f"({', '.join(map(str, seeds))}), {cfg.benchmark.seeds} fine-tuning seed(s) per model. Reference arm: "
             f"**{reference}**" + (f"; floor: **{floor}** (same architecture, tokenizer and seeds, never pre-trained)"
                                   if floor else "") + ".",
             f"Test: Multi-Bootstrap over pre-training seeds x examples ({cfg.nboot} draws; paired seeds), 95% "
             f"percentile CI, two-sided p. Holm–Bonferroni over the study's {n_tests} comparisons with the reference "
             f"(tasks and domains together: one family), and separately over those with the floor (a second "
             f"family, which also decides each task's verdict); * = adjusted p < {cfg.alpha}. "
             "MDD = minimum detectable difference at 80% power (2.8 x bootstrap SE)."]
    if len(seeds) < 2:
        lines += ["", "**One pre-training seed per arm: fixed checkpoints, pre-training variance not measured. "
                      "Nothing below can be called significant.**"]
    lines += ["", "## Tasks (test split)", "",
              "| task (protocol) | verdict | arm | score × 100 | Δ vs ref | 95% CI | MDD | p (Holm, study) |"
              + (" Δ vs floor | 95% CI | p (Holm) |" if floor else ""),
              "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if floor else "")]
    verdicts = dict(zip(signal["setting"], signal["verdict"]))
    for _, r in tasks.iterrows():
        sd = "" if math.isnan(r["sd_pretrain"]) else f" ± {100 * r['sd_pretrain']:.2f}"
        cells = [f"{r['task']} ({r['protocol']}, {r['metric']})", verdicts.get(r["setting"], ""),
                 r["arm"] + (f" ({r['control']})" if r["control"] else ""), f"{100 * r['mean']:.2f}{sd}",
                 _fmt(r["delta"], 100) + (" *" if r["significant"] else ""),
                 "" if math.isnan(r["ci_low"]) else f"[{_fmt(r['ci_low'], 100)}, {_fmt(r['ci_high'], 100)}]",
                 _fmt(r["mdd"], 100, signed=False), _p(r["p_holm_study"])]
        if floor:
            cells += [_fmt(r["floor_delta"], 100) + (" *" if r["floor_significant"] else ""),
                      "" if math.isnan(r["floor_ci_low"]) else f"[{_fmt(r['floor_ci_low'], 100)}, "
                                                              f"{_fmt(r['floor_ci_high'], 100)}]",
                      _p(r["floor_p_holm_study"])]
        lines.append("| " + " | ".join(cells) + " |")
    if domains is not None:
        lines += ["", "## Domains: held-out MLM loss (nats per predicted token, lower is better)", "",
                  f"Every model predicts the same masked tokens of the same documents: the held-out documents of each "
                  f"source (never in any sample) and {cfg.evaluation.wiki_docs} Wikipedia paragraphs (no arm trains on "
                  "Wikipedia). Δ < 0: the arm's loss is lower than the reference's.", "",
                  "| source (docs) | arm | loss | Δ vs ref | 95% CI | MDD | p (Holm, study) |"
                  + (" Δ vs floor | p (Holm) |" if floor else ""),
                  "|---|---|---|---|---|---|---|" + ("---|---|" if floor else "")]
        for _, r in domains.iterrows():
            sd = "" if math.isnan(r["sd_pretrain"]) else f" ± {r['sd_pretrain']:.3f}"
            cells = [f"{r['source']} ({r['documents']})", r["arm"] + (f" ({r['control']})" if r["control"] else ""),
                     f"{r['loss']:.3f}{sd}", _fmt(r["delta"], digits=3) + (" *" if r["significant"] else ""),
                     "" if math.isnan(r["ci_low"]) else f"[{_fmt(r['ci_low'], digits=3)}, {_fmt(r['ci_high'], digits=3)}]",
                     _fmt(r["mdd"], signed=False, digits=3), _p(r["p_holm_study"])]
            if floor:
                cells += [_fmt(r["floor_delta"], digits=3) + (" *" if r["floor_significant"] else ""),
                          _p(r["floor_p_holm_study"])]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Task signal", "",
              "| task (protocol) | verdict | SNR | median MDD × 100 | pre-training seeds | test examples |",
              "|---|---|---|---|---|---|"]
    for _, r in signal.iterrows():
        lines.append(f"| {r['task']} ({r['protocol']}) | {r['verdict']} | {_fmt(r['snr'], signed=False)} | "
                     f"{_fmt(r['mdd'], 100, signed=False)} | {r['pretrain_seeds']} | {r['test_examples']} |")
    b = cfg.benchmark
    deviations = [f"task sets capped at {b.limit_train or 'all'} training / {b.limit_eval or 'all'} evaluation "
                  "examples"] if (b.limit_train or b.limit_eval) else []
    dev_train = sorted({r["task"] for _, r in signal.iterrows() if r["protocol"] == "dev-train"})
    if dev_train:
        deviations.append(f"`dev-train` tasks ({', '.join(dev_train)}: no training split offline) train on the "
                          "validation split minus a hashed slice and score test, so they are not comparable with "
                          "published numbers")
    lines += ["", "Deviations: " + ("; ".join(deviations) if deviations else "none") + ".",
              "", "What this does not show: differences below the MDD; anything at BERTIN's scale (65.5 B tokens, "
                  "roberta-base); strategy rankings on tasks with no signal at this scale."]
    return "\n".join(lines) + "\n"


def _mark_signal(leaderboard_md, signal) -> None:
    """The study's leaderboard says which tasks carry no signal at this scale."""
    if not leaderboard_md.is_file():
        return
    text = leaderboard_md.read_text(encoding="utf-8").split("\n## Task signal")[0].rstrip("\n")
    rows = [f"- {r['task']}: {r['verdict']}" for _, r in signal.iterrows()]
    write_text_atomic(leaderboard_md, text + "\n\n## Task signal\n\nRead each task against the never-pre-trained "
                      "floor (Multi-Bootstrap, Holm-adjusted; see evidence.md):\n\n" + "\n".join(rows) + "\n")
