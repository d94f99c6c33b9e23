"""``bench run | leaderboard | compare | ls``: thin wrappers over the benchmark package's functions."""

from __future__ import annotations

from pathlib import Path

import click

from bertin_bench.errors import user_errors
from bertin_bench.executor import executor_click_options


def _parse_set(values: tuple[str, ...]) -> dict:
    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. learning_rate=3e-5", param_hint="--set")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


@click.command(context_settings={"max_content_width": 100})
@click.option("--model", "-m", required=True,
              help="Registry name (see `bench ls models`), Hub id (owner/name or an org-less id), or a local model directory.")
@click.option("--task", "-t", "tasks", multiple=True, help="Task, task group or 'all'; repeat or comma-separate. Default: the 'bertin' group.")
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(1), help="Runs per task, seeds 0..N-1.")
@click.option("--epochs", type=click.IntRange(1), help="Fine-tuning epochs (default: the task's; same as --set epochs=N).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), help="Peak learning rate (default: the task's; same as --set learning_rate=X).")
@click.option("--results-dir", default="results", show_default=True, type=click.Path(file_okay=False), help="Where result files go.")
@click.option("--force", is_flag=True, help="Rerun and replace runs whose result files exist.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a hyperparameter (learning_rate, batch_size, epochs, max_length, warmup_ratio, weight_decay, "
                   "eval_batch_size) or, for one task, a local data file (train_file, validation_file, test_file: "
                   "a path in the data directory, or absolute).")
@click.option("--limit-train", type=click.IntRange(1), help="Use only the first N training examples (quick runs; marked in results and leaderboard).")
@click.option("--limit-eval", type=click.IntRange(1), help="Use only the first N validation and test examples.")
@click.option("--model-name", help="Display name for a local directory (default: the directory name).")
@click.option("--revision", help="Hub revision of the model (branch, tag or commit; default: the registry's pin, else main). "
                                 "The commit it resolves to is recorded.")
@click.option("--from-pt", is_flag=True, default=None,
              help="Prefer PyTorch-format weights (model.safetensors, else pytorch_model.bin) where Flax ones exist too. "
                   "A model with PyTorch weights only is loaded without it; pytorch_model.bin needs the torch extra: "
                   "pip install 'bertin-bench[torch]'.")
@click.option("--source", type=click.Choice(["auto", "local", "hub"]), default="auto", show_default=True,
              help="Task data: local files in the data directory, the Hub, or local when present.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when the output is a terminal).")
@executor_click_options(workers_help="Runs (model, task, seed) at the same time, each in its own process with its own "
                                     "GPUs or share of the CPU cores (--executor local); array slots (slurm); Ray "
                                     "tasks in flight (ray).", gpus=True)
@user_errors
def run(model, tasks, seeds, epochs, lr, results_dir, force, overrides, limit_train, limit_eval, model_name, revision,
        from_pt, source, progress, **executor):
    """Fine-tune MODEL on Spanish tasks, several seeds; one result JSON per run.

    Runs already done (same model content or Hub commit, task version, hyperparameters, limits)
    are skipped, and say so; runs another `bench run` is doing are skipped too. The local data
    directory: `--data-dir DIR` or $BERTIN_DATA_DIR (default ../shared/data).

    With --workers N > 1 or --executor slurm|ray, every run is a unit on datatrove's executor
    (docs/scale.md): local processes each pinned to their GPUs or cores, one Slurm job array
    (submitted, the command returns; rerun it to see what is left), or Ray tasks asking
    --gpus-per-task/--cpus-per-task.

    \b
    Examples:
      bench run --model beto --task ner_conll2002_es --seeds 3
      bench run --model out/gaussian/export --model-name gaussian-small --task bertin
      bench run -m out/tiny/export -t pos_conll2002_es,pawsx_es --seeds 2 --limit-train 500 --limit-eval 200
      bench run -m bertin-gaussian -t xnli_es --set max_length=512 --set batch_size=16
      bench run -m xlm-roberta-base -t pawsx_es --epochs 3 --lr 2e-5
      bench run -m beto -t mldoc_es --set train_file=mldoc_es/spanish.train.5000
      bench run -m beto -t bertin --seeds 5 --workers 4            # 4 runs at once, 1 GPU each
      bench run -m beto -t bertin --seeds 5 --executor slurm --workers 16 --gpus-per-task 1 \\
          --slurm-partition gpu --slurm-time 02:00:00
      RAY_ADDRESS=auto bench run -m beto -t bertin --executor ray --workers 8 --gpus-per-task 1
    """
    # Everything the command line says is checked here, before JAX and transformers are imported
    # (~20 s): a typo fails at once.
    from benchmark.tasks import check_hyperparameters, split_overrides, task_names

    settings = _parse_set(overrides)
    selected = task_names(list(tasks) or None)
    checked = check_hyperparameters(split_overrides(settings)[0])
    for key, value in (("epochs", epochs), ("learning_rate", lr)):
        if value is not None:
            if key in checked and checked[key] != value:
                raise click.UsageError(f"--{'lr' if key == 'learning_rate' else key} {value} and --set {key}={settings[key]} disagree")
            settings[key] = value

    from bertin_bench.executor import options_from_cli

    options = options_from_cli(**executor, slurm_job_name=f"bench-run-{model_name or Path(model).name}")
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    if options.kind == "local" and options.workers == 1:  # one after the other, in this process
        from benchmark.runner import run_benchmark

        paths = run_benchmark(
            model, selected, seeds=seeds, results_dir=results_dir, force=force, overrides=settings,
            limit_train=limit_train, limit_eval=limit_eval, model_name=model_name, from_pt=from_pt, data_source=source,
            progress=progress, revision=revision, echo=echo,
        )
    else:
        from benchmark.executors import run_matrix

        done = run_matrix(
            [(model, model_name)], selected, seeds=seeds, executor=options, results_dir=results_dir, force=force,
            overrides=settings, limit_train=limit_train, limit_eval=limit_eval, from_pt=from_pt, data_source=source,
            revision=revision, progress=False if progress is None else progress, echo=echo,
        )
        if done.submitted:
            click.echo(f"submitted {len(done.units)} run(s) as one Slurm job array ({len(done.results)} of the matrix "
                       f"done so far; logs in {done.logging_dir}). Rerun this command to see what is left or "
                       "resubmit what failed; `bench leaderboard` reads whatever is done.")
            return
        paths = done.results
    from benchmark.results import FinetuneResult

    for path in paths:
        res = FinetuneResult.from_disk(path)
        click.echo(f"{res.task.name:<18} seed {res.seed}  {res.task.main_score} {100 * res.main_score:6.2f}"
                   f"  (best epoch {res.best_epoch}, {_speed(res)})  {path}")


def _speed(res) -> str:
    """Training speed without XLA compilation: the first epoch compiles, so the later epochs'
    rate is the steady one; with one epoch only, say that compilation is included."""
    later = res.dev.per_epoch[1:]
    seconds = sum(e["train_seconds"] for e in later)
    if later and seconds > 0:
        per_epoch = res.timing.train_examples_seen / len(res.dev.per_epoch)
        return f"{per_epoch * len(later) / seconds:.0f} train ex/s"
    return f"{res.timing.examples_per_second:.0f} train ex/s incl. compilation"


@click.command(context_settings={"max_content_width": 100})
@click.option("--results-dir", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--group", default="bertin", show_default=True, help="Task group averaged in the avg column.")
@click.option("--no-reported", is_flag=True, help="Leave out the published (reported) rows.")
@user_errors
def leaderboard(results_dir, group, no_reported):
    """Rebuild RESULTS_DIR/leaderboard.{csv,md,html} from every result file under RESULTS_DIR (studies
    included) and the published scores (.html only with them; columns: benchmark/RESULTS_SCHEMA.md).

    \b
    Examples:
      bench leaderboard
      bench leaderboard --results-dir results/study-small --no-reported
    """
    from benchmark.leaderboard import build_leaderboard

    df = build_leaderboard(results_dir, group=group, include_reported=not no_reported)
    click.echo((click.format_filename(f"{results_dir}/leaderboard.md")) + f": {len(df)} rows")
    from pathlib import Path

    click.echo(Path(results_dir, "leaderboard.md").read_text(encoding="utf-8"))


@click.command(context_settings={"max_content_width": 100})
@click.argument("arms", nargs=-1, required=True)
@click.option("--results-dir", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--out-dir", type=click.Path(file_okay=False), help="Default: RESULTS_DIR/compare/<A>_vs_<B>.")
@click.option("--reference", help="The arm every other is compared with (default: the first that is not the floor).")
@click.option("--floor", help="The never-pre-trained arm every task is read against (e.g. study-none).")
@click.option("--nboot", "--n-boot", default=1000, show_default=True, type=click.IntRange(100),
              help="Multi-Bootstrap draws.")
@click.option("--alpha", default=0.05, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Significance level, after Holm's adjustment over the table's comparisons.")
@user_errors
def compare(arms, results_dir, out_dir, reference, floor, nboot, alpha):
    """Compare ARMS per task: Δ vs the reference (and the floor), 95% CI, MDD, Holm-adjusted p.

    An arm is a model name, a glob of the models that are its pre-training seeds
    (``small-gaussian-s*``, called ``small-gaussian``) or ``NAME=GLOB``. The test is the
    Multi-Bootstrap over pre-training seeds x test examples; with one pre-trained model per arm it
    says "fixed checkpoints: pre-training variance not measured" and flags nothing. A fixed-checkpoint
    bootstrap and Welch's t stay as labelled secondary columns. Writes compare.csv, compare.md,
    signal.csv and a forest plot compare.png.

    \b
    Examples:
      bench compare 'small-random-s*' 'small-stepwise-s*' 'small-gaussian-s*' --floor 'small-none-s*' \\
          --results-dir results/studies/small
      bench compare beto bertin-gaussian --out-dir results/figures
    """
    from pathlib import Path

    from benchmark import results
    from benchmark.compare import compare_arms, resolve_arms, runs_by_model

    specs = list(arms) + ([floor] if floor and floor not in arms else [])
    resolved = resolve_arms(specs, list(runs_by_model(results_dir)))
    names = list(resolved)
    floor_name = names[specs.index(floor)] if floor else None
    ref_name = names[specs.index(reference)] if reference in specs else reference
    compare_arms(resolved, results_dir, out_dir=out_dir, reference=ref_name, floor=floor_name, nboot=nboot, alpha=alpha)
    out = Path(out_dir) if out_dir else Path(results_dir) / "compare" / "_vs_".join(results.slug(n) for n in names)
    click.echo((out / "compare.md").read_text(encoding="utf-8"))
    click.echo(f"wrote {out}/compare.csv, compare.md, signal.csv, compare.png")


@click.command(name="ls", context_settings={"max_content_width": 100})
@click.argument("what", type=click.Choice(["tasks", "models"]))
def ls(what):
    """List the task or the model registry.

    \b
    Examples:
      bench ls tasks
      bench ls models
    """
    if what == "tasks":
        from benchmark.loaders import local_files
        from benchmark.tasks import GROUPS, TASKS

        for spec in TASKS.values():
            local = "local" if local_files(spec) else "no local files"
            pin = f"@{spec.hub_revision[:7]}" if spec.hub_revision else " (revision not pinned)"
            hub = f"hub {spec.hub_id}/{spec.hub_config}{pin}" if spec.hub_id else "no hub"
            proto = "" if "train" in spec.local_files or not spec.local_files else ", dev-train locally"
            click.echo(f"{spec.id:<22} {spec.task_type:<24} main={spec.main_score:<9} [{local}{proto}; {hub}]")
            click.echo(f"{'':<22} {spec.description}")
        for group, names in GROUPS.items():
            click.echo(f"group {group}: {', '.join(names)}")
    else:
        from benchmark.models import MODELS

        for spec in MODELS.values():
            rep = f", {len(spec.reported)} reported scores" if spec.reported else ""
            click.echo(f"{spec.name:<22} {spec.hub_id:<50} {spec.family}{rep}")
            click.echo(f"{'':<22} {spec.description}")
