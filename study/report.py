"""What a finished study publishes: leaderboard, comparison, figures and ``study.json``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bertin_bench.io import write_json_atomic
from bertin_bench.provenance import environment, hash_jsonable

if TYPE_CHECKING:
    from study.run import Study

# Machine-local paths a summary carries; study.json is published, so it keeps only the numbers.
_LOCAL_KEYS = ("run_dir", "model_dir", "final_checkpoint")


def write_report(study: "Study", boundaries, samples: dict, pretrained: dict, seconds: float) -> dict:
    from benchmark.compare import compare_models
    from benchmark.leaderboard import build_leaderboard

    from study import plots

    cfg, lay = study.cfg, study.layout
    # Only this study's arms: reported rows of full-size models would not be comparable.
    board = build_leaderboard(lay.results, group=cfg.benchmark.group, include_reported=False)
    names = [cfg.model_name(a) for a in cfg.arms]
    comparison = compare_models(names, lay.results, out_dir=lay.comparison_dir) if len(names) > 1 else None
    figs = {
        "perplexity": plots.perplexity_histograms(samples, boundaries, lay.figure("perplexity_by_strategy")),
        "sources": plots.kept_by_source(samples, lay.figure("kept_share_by_source")),
        "loss": plots.loss_curves({a: Path(p["run_dir"]) for a, p in pretrained.items()},
                                  lay.figure("pretraining_loss")),
        "scores": lay.comparison_png if comparison is not None else None,
    }
    report = {
        "study": cfg.name,
        "config": cfg.to_dict(),
        "config_hash": hash_jsonable(cfg.to_dict()),
        "boundaries": {"q1": boundaries.q1, "q2": boundaries.q2, "q3": boundaries.q3},
        "samples": samples,
        "pretraining": {a: {k: v for k, v in p.items() if k not in _LOCAL_KEYS} for a, p in pretrained.items()},
        "leaderboard": str(lay.leaderboard_md),
        "comparison": str(lay.comparison_md) if comparison is not None else None,
        "figures": {k: str(v) for k, v in figs.items() if v},
        "provenance": environment(),
        "leaderboard_rows": len(board),
        "seconds": round(seconds, 1),
    }
    write_json_atomic(lay.study_json, report)
    return report
