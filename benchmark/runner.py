"""``run_benchmark``: fine-tune one model on tasks x seeds and write one result file per run.

Order: settings, then the model (files, config, tokenizer, weights: ``models.resolve_model``), and
only then task data, so a wrong name or value fails in seconds rather than after the data loaded.

Resume: a run whose result file exists is skipped when its ``results.RunKey`` (model identity, task
version, hyperparameters, limits, data-file overrides, read from the file) equals the run's. A Hub
model whose snapshot resolved to another commit is another model: its runs are redone. A file made
with other settings is an error (``force=True`` reruns and replaces it, ``redo_stale`` redoes just
the stale runs), so a changed setting never hides behind an old number.

Concurrency: each run (model x task x seed) is claimed with an exclusive lock next to its result
file (``.seed<N>.lock``) for as long as it runs. Two ``bench run`` processes on one results directory
therefore never do the same run twice: the second skips the runs the first has done or holds, and
does the others. The lock is the kernel's (``flock``): it frees itself when its holder dies,
however it dies, so a killed run is simply redone by the next ``bench run``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from bertin_bench.provenance import environment

from benchmark import results
from benchmark.models import check_compatible, load_model, load_tokenizer, resolve_model
from benchmark.tasks import check_hyperparameters, get_task, split_overrides, task_names

log = logging.getLogger(__name__)


def model_capacity(config) -> int:
    """Longest input the position embeddings allow (RoBERTa offsets positions by pad_token_id + 1)."""
    n = getattr(config, "max_position_embeddings", 512)
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        n -= (config.pad_token_id or 0) + 1
    return n


def unit_lock_path(result_path: Path) -> Path:
    return result_path.with_name(f".{result_path.stem}.lock")


@contextlib.contextmanager
def claim(result_path: Path) -> Iterator[bool]:
    """Hold the run's lock while the block runs; yields False (without waiting) when another live
    process holds it.

    Per run rather than ``bertin_bench.locks.output_lock`` on the results directory, since one
    results directory holds the runs of many models and processes. The holder deletes the lock file
    before it lets go, so finished runs leave no lock files among the results (a killed run leaves
    an empty one, taken over by the next run); a process that opened the file just before it was
    deleted sees that its file is no longer the one at the path and tries again."""
    import fcntl

    result_path.parent.mkdir(parents=True, exist_ok=True)
    path = unit_lock_path(result_path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us deleted it: take the new file
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # releases the lock


def read_existing(path: Path) -> results.FinetuneResult:
    """An existing result file, or a ValueError naming it (truncated, binary, another schema)."""
    try:
        return results.FinetuneResult.from_disk(path)
    except (ValueError, KeyError, TypeError) as err:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        if str(path) not in text:
            text = f"{path}: {text}"
        raise ValueError(f"{text}. It is not a result this version can read: move it away, or rerun with "
                         "--force to replace it") from None


@dataclasses.dataclass
class TaskRuns:
    """One task's runs of one model: the settings they are made with and their result files."""

    name: str
    spec: Any
    hp: dict
    wanted: results.RunKey
    paths: dict[int, Path]  # seed -> result file


@dataclasses.dataclass
class Prepared:
    """A model resolved and checked, and the runs (task x seed) asked of it; no task data loaded."""

    resolved: Any
    tokenizer: Any
    tasks: list[TaskRuns]
    file_overrides: dict
    data_source: str


def seed_list(seeds) -> list[int]:
    """``seeds``: a count N (seeds 0..N-1) or the seeds themselves."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError("seeds must be >= 1")
        return list(range(seeds))
    chosen = sorted(set(seeds))
    if not chosen or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in chosen):
        raise ValueError(f"seeds must be a count >= 1 or integers >= 0, got {seeds!r}")
    return chosen


def prepare(
    model: str, tasks, *, seeds=3, results_dir: str | Path = "results", overrides: dict[str, Any] | None = None,
    limit_train: int | None = None, limit_eval: int | None = None, model_name: str | None = None,
    from_pt: bool | None = None, data_source: str = "auto", revision: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> Prepared:
    """Check the settings, resolve the model (files, config, tokenizer: ``models.resolve_model``)
    and name every run's result file, loading no task data: the first half of
    :func:`run_benchmark`, and what an executor's dispatcher asks before it hands out units."""
    say = echo or log.info
    names = task_names(tasks)
    chosen = seed_list(seeds)
    hp_overrides, file_overrides = split_overrides(overrides)
    hp_overrides = check_hyperparameters(hp_overrides)
    if file_overrides and len(names) > 1:
        raise ValueError(f"--set {', '.join(f'{s}_file' for s in file_overrides)} names one task's files; "
                         f"run one task at a time (asked for {', '.join(names)})")
    if file_overrides and data_source == "auto":
        data_source = "local"  # a missing override file must be an error, not a silent fall-back to the Hub
    resolved = resolve_model(model, model_name=model_name, from_pt=from_pt, revision=revision)
    tokenizer, config = load_tokenizer(resolved)
    check_compatible(resolved, tokenizer, config)
    if resolved.commit:
        say(f"{resolved.name}: {resolved.hub_id} at commit {resolved.commit[:12]} ({resolved.weights} weights)")
    capacity = model_capacity(config)
    runs = []
    for name in names:
        spec = get_task(name).with_files(file_overrides)
        hp = spec.hyperparameters(hp_overrides)
        if hp["max_length"] > capacity:
            log.warning("%s: max_length %d exceeds %s's %d positions; using %d", name, hp["max_length"], resolved.name, capacity, capacity)
            hp["max_length"] = capacity
        wanted = results.RunKey.for_run(resolved, spec, hp, (limit_train, limit_eval), file_overrides)
        paths = {seed: results.run_path(results_dir, resolved.name, name, seed) for seed in chosen}
        runs.append(TaskRuns(name, spec, hp, wanted, paths))
    return Prepared(resolved, tokenizer, runs, file_overrides, data_source)


def pending(prepared: Prepared, *, force: bool = False, redo_stale: bool = False,
            echo: Callable[[str], None] | None = None) -> list[tuple[str, int, Path]]:
    """The runs (task, seed, result file) of ``prepared`` still to do, judged from the result
    files alone; a stale file is an error unless ``force`` or ``redo_stale`` (as in
    :func:`run_benchmark`). Runs another process holds count as to do: whoever gets to them
    first under their lock does them."""
    say = echo or log.info
    return [(t.name, seed, path) for t in prepared.tasks for seed, path in t.paths.items()
            if _needs_run(path, t.wanted, force, redo_stale, prepared.resolved, say, quiet=True)]


def run_benchmark(
    model: str, tasks, *, seeds=3, results_dir: str | Path = "results", force: bool = False,
    overrides: dict[str, Any] | None = None, limit_train: int | None = None, limit_eval: int | None = None,
    model_name: str | None = None, from_pt: bool | None = None, data_source: str = "auto",
    progress: bool | None = None, redo_stale: bool = False, revision: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[Path]:
    """Fine-tune ``model`` (registry name, Hub id or local directory; ``revision`` for Hub models)
    on ``tasks`` (names, groups or 'all') with ``seeds`` (a count N: seeds 0..N-1, or a list of
    seeds), one after the other in this process; returns the result files of the runs this call
    did or found done. ``echo`` gets one line per skipped or redone run.

    ``overrides`` are hyperparameters, or ``<split>_file`` keys replacing a local data file of the
    (single) task. An existing result made with another model content, task version,
    hyperparameters, limits or data files is an error, unless ``redo_stale`` (then just that run is
    redone; ``force`` redoes all). Runs another live process holds are skipped. To run the runs
    on several processes, GPUs or machines at once: :func:`benchmark.executors.run_matrix`."""
    say = echo or log.info
    prepared = prepare(model, tasks, seeds=seeds, results_dir=results_dir, overrides=overrides,
                       limit_train=limit_train, limit_eval=limit_eval, model_name=model_name, from_pt=from_pt,
                       data_source=data_source, revision=revision, echo=say)
    resolved, tokenizer = prepared.resolved, prepared.tokenizer
    written: list[Path] = []
    for t in prepared.tasks:
        paths = list(t.paths.values())
        if not [p for p in paths if _needs_run(p, t.wanted, force, redo_stale, resolved, say, quiet=True)]:
            written += [p for p in paths if p.exists()]
            for p in paths:
                say(f"skip {p} (done)")
            continue
        from benchmark.loaders import load_task_data

        data = load_task_data(t.spec, source=prepared.data_source, limit_train=limit_train, limit_eval=limit_eval)
        for seed, path in t.paths.items():
            with claim(path) as mine:
                if not mine:
                    say(f"skip {path} (another bench run is doing it)")
                    continue
                # Checked again under the lock: another process may have finished it meanwhile.
                if not _needs_run(path, t.wanted, force, redo_stale, resolved, say):
                    written.append(path)
                    continue
                written.append(_run_one(resolved, tokenizer, t.spec, data, t.hp, seed, path, prepared.file_overrides,
                                        progress))
    return written


def _needs_run(path: Path, wanted: results.RunKey, force: bool, redo_stale: bool, resolved, say, quiet=False) -> bool:
    """Whether the run writing ``path`` must be (re)done; says why it is skipped or redone."""
    if force or not path.exists():
        return True
    diffs = read_existing(path).run_key().differences(wanted)
    if not diffs:
        if not quiet:
            say(f"skip {path} (done)")
        return False
    # A Hub snapshot that resolved to another commit is another model under the same id: redo.
    if diffs == ["model content"] and resolved.commit:
        if not quiet:
            say(f"redo {path}: {resolved.hub_id} now resolves to commit {resolved.commit[:12]}")
        return True
    if not redo_stale:
        raise FileExistsError(
            f"{path} exists but was made with a different {', '.join(diffs)}; "
            "rerun with --force to replace it, or use another --results-dir / --model-name"
        )
    if not quiet:
        say(f"redo {path}: made with a different {', '.join(diffs)}")
    return True


def _run_one(resolved, tokenizer, spec, data, hp, seed, path, file_overrides, progress) -> Path:
    import jax

    from benchmark.finetune import finetune

    flax_model = load_model(resolved, spec.task_type, spec.labels, seed)
    out = finetune(flax_model, tokenizer, data, hp, seed, progress=progress)
    result = results.FinetuneResult.from_run(
        model=resolved, spec=spec, data=data, hp=hp, seed=seed, out=out,
        device_kind=jax.devices()[0].device_kind, provenance=environment(), file_overrides=file_overrides,
    )
    result.to_disk(path)
    log.info("%s %s seed %d: test %s = %.4f (best epoch %d) -> %s", resolved.name, spec.name, seed,
             spec.main_score, result.main_score, out.best_epoch, path)
    return path


__all__ = ["run_benchmark", "prepare", "pending", "seed_list", "model_capacity", "claim", "read_existing"]
