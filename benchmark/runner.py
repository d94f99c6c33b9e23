"""``run_benchmark``: fine-tune one model on tasks x seeds and write one result file per run.

Resume: a run whose result file exists is skipped when it was made with the same model content,
task version, hyperparameters and limits; a file made differently is an error (``force=True``
reruns and replaces it), so a changed setting never hides behind an old number.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bertin_bench.provenance import environment

from benchmark import results as R
from benchmark.loaders import load_task_data
from benchmark.metrics import pack_predictions
from benchmark.models import ResolvedModel, check_compatible, load_model, load_tokenizer, resolve_model
from benchmark.tasks import get_task, task_names

log = logging.getLogger(__name__)


def model_capacity(config) -> int:
    """Longest input the position embeddings allow (RoBERTa offsets positions by pad_token_id + 1)."""
    n = getattr(config, "max_position_embeddings", 512)
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        n -= (config.pad_token_id or 0) + 1
    return n


def _same_setting(old: dict, model: ResolvedModel, spec, hp: dict, limit_train, limit_eval) -> list[str]:
    diffs = []
    if old["model"].get("content_hash") != model.content_hash or old["model"].get("hub_id") != model.hub_id:
        diffs.append("model content")
    if old["task"]["version"] != spec.version:
        diffs.append(f"task version {old['task']['version']} -> {spec.version}")
    if old["hyperparameters"] != hp:
        diffs.append("hyperparameters")
    if (old["task"]["limit_train"], old["task"]["limit_eval"]) != (limit_train, limit_eval):
        diffs.append("limits")
    return diffs


def run_benchmark(
    model: str, tasks, *, seeds: int = 3, results_dir: str | Path = "results", force: bool = False,
    overrides: dict[str, Any] | None = None, limit_train: int | None = None, limit_eval: int | None = None,
    model_name: str | None = None, from_pt: bool | None = None, data_source: str = "auto",
    progress: bool | None = None, redo_stale: bool = False,
) -> list[Path]:
    """Fine-tune ``model`` (registry name, Hub id or local directory) on ``tasks`` (names, groups or
    'all') with seeds 0..seeds-1; returns the result files (existing ones included).

    An existing result made with another model content, task version, hyperparameters or limits
    is an error, unless ``redo_stale`` (then just that run is redone; ``force`` redoes all)."""
    import jax

    resolved = resolve_model(model, model_name=model_name, from_pt=from_pt)
    names = task_names(tasks)
    if seeds < 1:
        raise ValueError("seeds must be >= 1")
    tokenizer, config = load_tokenizer(resolved)
    check_compatible(resolved, tokenizer, config)
    capacity = model_capacity(config)
    written: list[Path] = []
    for name in names:
        spec = get_task(name)
        hp = spec.hyperparameters(overrides)
        if hp["max_length"] > capacity:
            log.warning("%s: max_length %d exceeds %s's %d positions; using %d", name, hp["max_length"], resolved.name, capacity, capacity)
            hp["max_length"] = capacity
        todo = []
        for seed in range(seeds):
            path = R.run_path(results_dir, resolved.name, name, seed)
            if path.exists() and not force:
                diffs = _same_setting(R.load_result(path), resolved, spec, hp, limit_train, limit_eval)
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
            result = {
                "schema_version": R.SCHEMA_VERSION,
                "kind": R.KIND,
                "model": resolved.record(),
                "task": {
                    "name": spec.name, "version": spec.version, "type": spec.task_type, "metric": spec.metric,
                    "main_score": spec.main_score, "labels": list(spec.labels), "protocol": data.protocol,
                    "data_source": data.source, "data": {k: v for k, v in data.info.items() if k not in ("limit_train", "limit_eval")},
                    "sizes": data.sizes(), "limit_train": limit_train, "limit_eval": limit_eval,
                    "hub_id": spec.hub_id, "hub_config": spec.hub_config,
                },
                "seed": seed,
                "hyperparameters": hp,
                "dev": {"best_epoch": out.best_epoch, "metrics": out.dev_metrics, "per_epoch": out.dev_history},
                "test": {"metrics": out.test_metrics, "predictions": pack_predictions(spec.task_type, out.test_gold, out.test_pred)},
                "main_score": out.test_metrics[spec.main_score],
                "best_epoch": out.best_epoch,
                "timing": {
                    "train_seconds": round(out.train_seconds, 3), "eval_seconds": round(out.eval_seconds, 3),
                    "examples_per_second": round(out.examples_per_second, 2), "train_examples_seen": out.train_examples_seen,
                    "steps": out.steps, "n_devices": out.n_devices, "device_kind": jax.devices()[0].device_kind,
                },
                "truncation": out.truncation,
                "provenance": environment(),
            }
            if resolved.pretraining is not None:
                result["model"]["pretraining"] = resolved.pretraining
            R.write_result(path, result)
            log.info("%s %s seed %d: test %s = %.4f (best epoch %d) -> %s", resolved.name, name, seed,
                     spec.main_score, result["main_score"], out.best_epoch, path)
            written.append(path)
    return written


__all__ = ["run_benchmark", "model_capacity"]
