"""``bench study``: run a sampling-strategy study, or print its plan."""

from __future__ import annotations

import click

from bertin_bench.errors import user_errors
from bertin_bench.executor import executor_click_options

EXECUTOR_FLAGS = ("executor", "workers", "slurm_partition", "slurm_time", "cpus_per_task", "mem_per_cpu_gb",
                  "gpus_per_task")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config")
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Print the plan (stages, token budgets, steps) and exit.")
@click.option("--publish", is_flag=True,
              help="Write the results to the published folder (results/studies/NAME) instead of the work dir.")
@executor_click_options(workers_help="Pre-training and fine-tuning units run at the same time (1: one after "
                                     "another in this process).", gpus=True)
@user_errors
def study(config: str, overrides: tuple[str, ...], dry_run: bool, publish: bool, **flags) -> None:
    """Run a sampling-strategy study: sample, pre-train at equal token budgets, benchmark.

    CONFIG is a preset name (demo, small, base: configs/study/NAME.yaml) or a YAML path;
    OVERRIDES are dotted ``section.key=value`` pairs. Every stage is skipped when its output
    exists and matches the config, so re-running resumes. Results go to the work dir
    (runs/study-NAME/results) and are compared with the published ones; --publish writes them to
    results/studies/NAME instead.

    \b
    Examples:
      bench study demo                      # tiny model, a few thousand documents, ~10 min on 2 CPU cores
      bench study small                     # the published CPU study
      bench study base --dry-run            # BERTIN's setup on mC4-es: the plan only
      bench study demo benchmark.seeds=2 sampling.strategies=[random,gaussian]
      bench study small --workers 2         # two units at a time, each on its share of the devices
      bench study base --executor slurm --gpus-per-task 1 --slurm-partition gpu --slurm-time 24:00:00

    The executor flags (or the config's ``executor:`` section) say where the pre-training and
    fine-tuning units run; they change where the work runs, never what it computes. With Slurm
    the command submits a stage's units and returns: run it again when they are done.
    """
    import dataclasses

    from study.config import load_study
    from study.plan import plan
    from study.reproduce import compare_with_published
    from study.run import Study

    cfg = load_study(config, overrides)
    ctx = click.get_current_context()
    given = {k: flags[k] for k in EXECUTOR_FLAGS if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    if given:  # the flags given win over the config's executor section
        cfg = dataclasses.replace(cfg, executor=dataclasses.replace(
            cfg.executor, **{("kind" if k == "executor" else k): v for k, v in given.items()}))
    if publish:
        cfg = dataclasses.replace(cfg, results_dir=cfg.publish_dir)
    runner = Study(cfg)
    if dry_run:
        click.echo("\n".join(plan(runner)))
        return
    report = runner.run()
    if "submitted" in report:
        return
    lay = runner.layout
    click.echo("")
    for path in (lay.leaderboard_md, lay.comparison_md):
        if path.is_file():
            click.echo(path.read_text(encoding="utf-8"))
    click.echo(f"study {cfg.name} finished in {report['seconds'] / 60:.1f} min")
    click.echo(f"results: {lay.results}")
    for name, path in report["figures"].items():
        click.echo(f"  figure ({name}): {path}")
    for line in compare_with_published(lay.results, cfg.published):
        click.echo(line)
