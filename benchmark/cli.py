"""``bench run | leaderboard | compare | ls``: thin wrappers over the benchmark package's functions."""

from __future__ import annotations

import click

from bertin_bench.errors import user_errors


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
@user_errors
def run(model, tasks, seeds, epochs, lr, results_dir, force, overrides, limit_train, limit_eval, model_name, revision,
        from_pt, source, progress):
    """Fine-tune MODEL on Spanish tasks, several seeds; one result JSON per run.

    Runs already done (same model content or Hub commit, task version, hyperparameters, limits)
    are skipped, and say so; runs another `bench run` is doing are skipped too. The local data
    directory: `--data-dir DIR` or $BERTIN_DATA_DIR (default ../shared/data).

    \b
    Examples:
      bench run --model beto --task ner_conll2002_es --seeds 3
      bench run --model out/gaussian/export --model-name gaussian-small --task bertin
      bench run -m out/tiny/export -t pos_conll2002_es,pawsx_es --seeds 2 --limit-train 500 --limit-eval 200
      bench run -m bertin-gaussian -t xnli_es --set max_length=512 --set batch_size=16
      bench run -m xlm-roberta-base -t pawsx_es --epochs 3 --lr 2e-5
      bench run -m beto -t mldoc_es --set train_file=mldoc_es/spanish.train.5000
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

    from benchmark.runner import run_benchmark

    paths = run_benchmark(
        model, selected, seeds=seeds, results_dir=results_dir, force=force, overrides=settings,
        limit_train=limit_train, limit_eval=limit_eval, model_name=model_name, from_pt=from_pt, data_source=source,
        progress=progress, revision=revision, echo=lambda line: click.echo(line, err=True),
    )
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
@click.argument("models", nargs=-1, required=True)
@click.option("--results-dir", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--out-dir", type=click.Path(file_okay=False), help="Default: RESULTS_DIR/compare/<A>_vs_<B>.")
@click.option("--test", type=click.Choice(["bootstrap", "welch", "both"]), default="both", show_default=True,
              help="Paired bootstrap over test examples, Welch's t over seeds, or both.")
@click.option("--n-boot", default=1000, show_default=True, type=click.IntRange(100), help="Bootstrap resamples.")
@user_errors
def compare(models, results_dir, out_dir, test, n_boot):
    """Compare MODELS per task (the first is the reference): difference and significance.

    Writes compare.csv, compare.md and a bar chart compare.png.

    \b
    Examples:
      bench compare random stepwise gaussian
      bench compare beto bertin-gaussian --test welch --out-dir results/figures
    """
    from benchmark.compare import compare_models

    df = compare_models(list(models), results_dir, out_dir=out_dir, test=test, n_boot=n_boot)
    from pathlib import Path

    from benchmark import results

    out = Path(out_dir) if out_dir else Path(results_dir) / "compare" / "_vs_".join(results.slug(n) for n in df["model"].unique())
    click.echo((out / "compare.md").read_text(encoding="utf-8"))
    click.echo(f"wrote {out}/compare.csv, compare.md, compare.png")


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
