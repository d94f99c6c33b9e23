"""Result files: the only module that knows the results layout and schema.

Layout: ``<results_dir>/runs/<model-slug>/<task>/seed<N>.json`` (one file per model, task, seed),
written atomically; ``<results_dir>/leaderboard.{csv,md}`` and ``<results_dir>/compare/`` are
derived from these files only. The schema is documented in ``benchmark/RESULTS_SCHEMA.md`` and
checked by ``validate_result``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from bertin_bench.io import read_json, write_json_atomic

SCHEMA_VERSION = 1
KIND = "bertin-bench/finetune-result"


def slug(name: str) -> str:
    """A file-system safe model name: ``bertin-project/bertin-base-gaussian`` -> ``bertin-project--bertin-base-gaussian``."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "--")).strip("-.")
    if not out:
        raise ValueError(f"cannot make a file name from model name {name!r}")
    return out


def run_path(results_dir: str | Path, model_name: str, task: str, seed: int) -> Path:
    return Path(results_dir) / "runs" / slug(model_name) / task / f"seed{seed}.json"


def write_result(path: str | Path, result: dict) -> Path:
    """Validate, then write atomically: an interrupted run never leaves a partial file."""
    errors = validate_result(result)
    if errors:
        raise ValueError(f"refusing to write an invalid result to {path}: " + "; ".join(errors))
    return write_json_atomic(path, result)


# --- schema ------------------------------------------------------------------------------------
# (key, type(s), required) per section; None in types means the value may be null.
_NUM = (int, float)
SCHEMA: dict[str, Any] = {
    "schema_version": int,
    "kind": str,
    "model": {
        "name": str, "source": str, "hub_id": (str, None), "revision": (str, None), "local_path": (str, None),
        "content_hash": (str, None), "family": (str, None), "from_pt": bool, "pretraining_tokens": (int, None),
    },
    "task": {
        "name": str, "version": str, "type": str, "metric": str, "main_score": str, "labels": list,
        "protocol": str, "data_source": str, "data": dict, "sizes": dict,
        "limit_train": (int, None), "limit_eval": (int, None),
    },
    "seed": int,
    "hyperparameters": dict,
    "dev": {"best_epoch": int, "metrics": dict, "per_epoch": list},
    "test": {"metrics": dict, "predictions": dict},
    "main_score": _NUM,
    "best_epoch": int,
    "timing": {"train_seconds": _NUM, "eval_seconds": _NUM, "examples_per_second": _NUM, "train_examples_seen": int,
               "steps": int, "n_devices": int, "device_kind": str},
    "truncation": dict,
    "provenance": {"git_sha": (str, None), "date": str, "packages": dict, "python": str, "platform": str},
}


def _check(obj: Any, schema: Any, where: str, errors: list[str]) -> None:
    if isinstance(schema, dict):
        if not isinstance(obj, dict):
            errors.append(f"{where}: expected an object")
            return
        for key, sub in schema.items():
            if key not in obj:
                errors.append(f"{where}.{key}: missing")
            else:
                _check(obj[key], sub, f"{where}.{key}", errors)
        return
    types = schema if isinstance(schema, tuple) else (schema,)
    if obj is None:
        if None not in types:
            errors.append(f"{where}: must not be null")
        return
    real = tuple(t for t in types if t is not None)
    if isinstance(obj, bool) and bool not in real:
        errors.append(f"{where}: expected {'/'.join(t.__name__ for t in real)}, got bool")
    elif not isinstance(obj, real):
        errors.append(f"{where}: expected {'/'.join(t.__name__ for t in real)}, got {type(obj).__name__}")


def validate_result(result: dict) -> list[str]:
    """Schema errors of a result (empty when valid), including consistency checks."""
    errors: list[str] = []
    _check(result, SCHEMA, "result", errors)
    if errors:
        return errors
    if result["schema_version"] != SCHEMA_VERSION or result["kind"] != KIND:
        errors.append(f"result: kind/schema_version must be {KIND!r}/{SCHEMA_VERSION}")
    task, model = result["task"], result["model"]
    if model["source"] not in ("registry", "hub", "local"):
        errors.append("result.model.source: must be registry, hub or local")
    if model["source"] == "local" and not (model["local_path"] and model["content_hash"]):
        errors.append("result.model: a local model needs local_path and content_hash")
    if model["source"] != "local" and not model["hub_id"]:
        errors.append("result.model: a registry/Hub model needs hub_id")
    if task["protocol"] not in ("official", "dev-train"):
        errors.append("result.task.protocol: must be official or dev-train")
    main = task["main_score"]
    if main not in result["test"]["metrics"]:
        errors.append(f"result.test.metrics: main score {main!r} missing")
    elif abs(result["test"]["metrics"][main] - result["main_score"]) > 1e-12:
        errors.append("result.main_score: differs from test.metrics[main_score]")
    if not 1 <= result["best_epoch"] <= len(result["dev"]["per_epoch"]):
        errors.append("result.best_epoch: outside the epochs run")
    if result["best_epoch"] != result["dev"]["best_epoch"]:
        errors.append("result.best_epoch: differs from dev.best_epoch")
    preds = result["test"]["predictions"]
    for key in ("encoding", "n", "gold", "pred"):
        if key not in preds:
            errors.append(f"result.test.predictions.{key}: missing")
    if preds.get("n") != task["sizes"].get("test"):
        errors.append("result.test.predictions.n: differs from task.sizes.test")
    return errors


def load_result(path: str | Path) -> dict:
    result = read_json(path)
    errors = validate_result(result)
    if errors:
        raise ValueError(f"{path}: invalid result: " + "; ".join(errors[:5]))
    return result


def iter_results(results_dir: str | Path) -> Iterator[tuple[Path, dict]]:
    """All valid result files under ``results_dir/runs`` (sorted); invalid ones are an error, since
    a leaderboard silently missing a run would be a wrong number."""
    root = Path(results_dir) / "runs"
    if not root.is_dir():
        return
    for path in sorted(root.glob("*/*/seed*.json")):
        yield path, load_result(path)


def setting_key(result: dict) -> str:
    """What must match for runs to be averaged: task version, protocol and subsampling."""
    t = result["task"]
    key = f"{t['name']}@{t['version']} {t['protocol']}"
    if t["limit_train"] or t["limit_eval"]:
        key += f" limit(train={t['limit_train']},eval={t['limit_eval']})"
    return key
