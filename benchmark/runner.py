"""``run_benchmark``: fine-tune one model on tasks x seeds and write one result file per run.

Resume: a run whose result file exists is skipped when its ``results.RunKey`` (model content,
task version, hyperparameters, limits, data-file overrides, read from the file) equals the run's;
a file made differently is an error (``force=True`` reruns and replaces it, ``redo_stale`` redoes
just the stale runs), so a changed setting never hides behind an old number.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bertin_bench.provenance import environment

from benchmark import results
from benchmark.loaders import load_task_data
from benchmark.models import check_compatible, load_model, load_tokenizer, resolve_model
from benchmark.tasks import get_task, split_overrides, task_names

log = logging.getLogger(__name__)


def model_capacity(config) -> int:
    """Longest input the position embeddings allow (RoBERTa offsets positions by pad_token_id + 1)."""
    n = getattr(config, "max_position_embeddings", 512)
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        n -= (config.pad_token_id or 0) + 1
    return n


def run_benchmark(
    model: str, tasks, *, seeds: int = 3, results_dir: str | Path = "results", force: bool = False,
    overrides: dict[str, Any] | None = None, limit_train: int | None = None, limit_eval: int | None = None,
    model_name: str | None = None, from_pt: bool | None = None, data_source: str = "auto",
    progress: bool | None = None, redo_stale: bool = False,
) -> list[Path]:
    """Fine-tune ``model`` (registry name, Hub id or local directory) on ``tasks`` (names, groups or
    'all') with seeds 0..seeds-1; returns the result files (existing ones included).

    ``overrides`` are hyperparameters, or ``<split>_file`` keys replacing a local data file of the
    (single) task. An existing result made with another model content, task version,
    hyperparameters, limits or data files is an error, unless ``redo_stale`` (then just that run is
    redone; ``force`` redoes all)."""
    import jax

    resolved = resolve_model(model, model_name=model_name, from_pt=from_pt)
    names = task_names(tasks)
    if seeds < 1:
        raise ValueError("seeds must be >= 1")
    hp_overrides, file_overrides = split_overrides(overrides)
    if file_overrides and len(names) > 1:
        raise ValueError(f"--set {', '.join(f'{s}_file' for s in file_overrides)} names one task's files; "
                         f"run one task at a time (asked for {', '.join(names)})")
    if file_overrides and data_source == "auto":
        data_source = "local"  # a missing override file must be an error, not a silent fall-back to the Hub
    tokenizer, config = load_tokenizer(resolved)
    check_compatible(resolved, tokenizer, config)
    capacity = model_capacity(config)
    written: list[Path] = []
    for name in names:
        spec = get_task(name).with_files(file_overrides)
        hp = spec.hyperparameters(hp_overrides)
        if hp["max_length"] > capacity:
            log.warning("%s: max_length %d exceeds %s's %d positions; using %d", name, hp["max_length"], resolved.name, capacity, capacity)
            hp["max_length"] = capacity
        wanted = results.RunKey.for_run(resolved, spec, hp, (limit_train, limit_eval), file_overrides)
        todo = []
        for seed in range(seeds):
            path = results.run_path(results_dir, resolved.name, name, seed)
            if path.exists() and not force:
                diffs = results.FinetuneResult.from_disk(path).run_key().differences(wanted)
                if diffs and not redo_stale:
                    raise FileExistsError(
                        f"{path} exists but was made with a different {', '.join(diffs)}; "
                        "rerun with --force to replace it, or use another --results-dir / --model-name"
                    )
                if not diffs:
                    log.info("skip %s (done)", path)
                    written.append(path)
                    continue
                log.warning("redo %s: made with a different %s", path, ", ".join(diffs))
            todo.append((seed, path))
        if not todo:
            continue
        data = load_task_data(spec, source=data_source, limit_train=limit_train, limit_eval=limit_eval)
        for seed, path in todo:
            from benchmark.finetune import finetune

            flax_model = load_model(resolved, spec.task_type, spec.labels, seed)
            out = finetune(flax_model, tokenizer, data, hp, seed, progress=progress)
            result = results.FinetuneResult.from_run(
                model=resolved, spec=spec, data=data, hp=hp, seed=seed, out=out,
                device_kind=jax.devices()[0].device_kind, provenance=environment(), file_overrides=file_overrides,
            )
            result.to_disk(path)
            log.info("%s %s seed %d: test %s = %.4f (best epoch %d) -> %s", resolved.name, name, seed,
                     spec.main_score, result.main_score, out.best_epoch, path)
            written.append(path)
    return written


__all__ = ["run_benchmark", "model_capacity"]
