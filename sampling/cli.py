"""``bench sample``: score, boundaries, run, stats. Thin: parse options, call sampling.pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bertin_bench.errors import user_errors
from bertin_bench.executor import executor_click_options, options_from_cli
from sampling.io import DEFAULT_MAX_CHARS
from sampling.options import SampleOptions, ScoreOptions
from sampling.scorer import MODES, NORMALIZATIONS

INPUT_HELP = ("Input: a .jsonl/.jsonl.gz/.parquet file, a directory or glob of shards (e.g. the output of "
              "`bench sample score`), or a Hub dataset hf://DATASET[:CONFIG][@SPLIT] (e.g. hf://allenai/c4:es).")


NORMALIZATION_OPTION = click.option(
    "--normalization", type=click.Choice(NORMALIZATIONS), default="auto", show_default=True,
    help="Text normalization before sentencepiece: cc_net (lowercase, strip accents), edugp (case and accents "
         "kept), raw (none); auto: the LM's normalization.json, else edugp for hf:// and edugp models, else cc_net.")


def _engine_options(f):
    """Options shared by `score` and `run`: input/output, scorer, datatrove executor, bad input."""
    options = [
        click.option("--input", "-i", "input_", required=True, help=INPUT_HELP),
        click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output directory."),
        click.option("--lm-dir", default=None,
                     help="Directory with es.arpa.bin + es.sp.model, or hf://edugp/kenlm/wikipedia "
                          "(default: kenlm_es in the data directory)."),
        click.option("--mode", type=click.Choice(MODES), default=None,
                     help="Scoring mode (default: the boundaries' mode, else `lines`)."),
        NORMALIZATION_OPTION,
        click.option("--text-key", default="text", show_default=True, help="Field holding the text."),
        click.option("--id-key", default=None,
                     help="Field with a stable document id for the keep hash (default: hash of the text)."),
        click.option("--tasks", default=1, show_default=True, type=click.IntRange(1),
                     help="Shards/tasks: output has one data/NNNNN.jsonl.gz per task."),
        # the executor flags, shared with `bench run` (bertin_bench.executor)
        executor_click_options(workers_help="Tasks run at the same time (local executor)."),
        click.option("--strict", is_flag=True, help="Stop at the first bad record (error names file:line) "
                                                    "instead of counting it as skipped."),
        click.option("--rejects", is_flag=True, help="Also write skipped records to OUT/rejects/ with reason and file:line."),
        click.option("--max-chars", default=DEFAULT_MAX_CHARS, show_default=True, type=int,
                     help="Longer documents are skipped with reason too_long (0: no limit)."),
        click.option("--limit", default=None, type=int, help="Read at most N records per task (for trials)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _score_options(out, text_key, id_key, tasks, workers, executor, slurm_partition, slurm_time, cpus_per_task,
                   mem_per_cpu_gb, strict, rejects, max_chars, limit, plot=False) -> ScoreOptions:
    """The `_engine_options` flags as the one ScoreOptions value `score` and `run` pass on."""
    return ScoreOptions(
        text_key=text_key, id_key=id_key, strict=strict, limit=limit, rejects=rejects, max_chars=max_chars, plot=plot,
        executor=options_from_cli(executor=executor, workers=workers, cpus_per_task=cpus_per_task,
                                  mem_per_cpu_gb=mem_per_cpu_gb, slurm_partition=slurm_partition,
                                  slurm_time=slurm_time, tasks=tasks, slurm_job_name=f"bench-sample-{Path(out).name}"),
    )


def _scorer(lm_dir, mode, normalization="auto"):
    from sampling.scorer import PerplexityScorer

    scorer = PerplexityScorer(lm_dir, mode=mode or "lines", normalization=normalization)
    scorer.check_normalization()  # once, here: a vocabulary that does not fit is reported before any work
    return scorer


def _print_summary(stats: dict, out: str) -> None:
    if stats.get("status") != "complete":
        click.echo(f"{stats.get('completed')}/{stats.get('tasks')} tasks done; when all are, run: bench sample stats {out}")
        return
    frac = stats["kept_fraction"]
    click.echo(
        f"seen {stats['seen']:,} documents ({stats['skipped_total']:,} skipped: {stats['skipped'] or 'none'}), "
        f"kept {stats['kept']:,} ({frac:.2%}; expected {stats['expected_fraction']:.2%})" if frac is not None
        else f"no valid document (skipped: {stats['skipped']})"
    )
    target = stats.get("target") or {}
    if "tokens" in target:
        click.echo(f"kept {stats['tokens_kept']:,} words (target {target['tokens']:,}; "
                   f"expected {stats['expected_tokens_kept']:,.0f}) of {stats['words_seen']:,}")
    png = f"  histogram: {out}/{stats['histogram_png']}" if stats.get("histogram_png") else ""
    click.echo(f"shards: {out}/data/  stats: {out}/stats.json{png}")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def sample():
    """Perplexity sampling of a corpus with a KenLM model (BERTIN's recipe, on datatrove).

    \b
    Typical use:
      bench sample boundaries -i web.jsonl.gz -o boundaries.json --mode ccnet
      bench sample run -i web.jsonl.gz -o out/gauss --strategy gaussian \\
          --boundaries boundaries.json --target-fraction 0.3
    Score once, sample many:
      bench sample score -i web.jsonl.gz -o out/scored --tasks 2 --workers 2
      bench sample run -i out/scored -o out/step --strategy stepwise --target-fraction 0.3
    """


@sample.command()
@_engine_options
@click.option("--plot", is_flag=True, help="Also draw OUT/perplexity_hist.png (matplotlib costs ~1 s).")
@user_errors
def score(input_, out, lm_dir, mode, normalization, **engine):
    """Score every document: OUT/data/NNNNN.jsonl.gz with each input field plus `perplexity`.

    Nothing is dropped except bad input (counted by reason in OUT/stats.json). `bench sample run`
    and `bench sample boundaries` reuse these perplexities instead of re-scoring.

    \b
    Examples:
      bench sample score -i ../shared/data/web_es/web_es_mix.jsonl.gz -o out/scored
      bench sample score -i 'mc4/*.json.gz' -o out/scored --tasks 64 --workers 16 --mode ccnet
      bench sample score -i hf://allenai/c4:es -o out/scored --executor slurm --tasks 1000 \\
          --slurm-partition cpu --slurm-time 04:00:00
    """
    from sampling.pipeline import run_score

    options = _score_options(out, **engine)
    stats = run_score(input_, out, scorer=_scorer(lm_dir, mode, normalization), options=options)
    _print_summary(stats, out)


@sample.command()
@click.option("--input", "-i", "input_", required=True, help=INPUT_HELP)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Boundaries JSON to write.")
@click.option("--lm-dir", default=None, help="Directory with es.arpa.bin + es.sp.model (default: data dir kenlm_es).")
@click.option("--mode", type=click.Choice(MODES), default="lines", show_default=True, help="Scoring mode.")
@NORMALIZATION_OPTION
@click.option("--n-docs", default=10_000, show_default=True, type=click.IntRange(1), help="Sample size.")
@click.option("--reservoir", is_flag=True, help="Uniform reservoir sample over the whole input instead of the first N.")
@click.option("--seed", default=0, show_default=True, help="Seed of the reservoir sample.")
@click.option("--text-key", default="text", show_default=True)
@click.option("--max-chars", default=DEFAULT_MAX_CHARS, show_default=True, type=int)
@user_errors
def boundaries(input_, out, lm_dir, mode, normalization, n_docs, reservoir, seed, text_key, max_chars):
    """Estimate perplexity quartiles (Q1, median, Q3) and save them with the LM and mode.

    \b
    Examples:
      bench sample boundaries -i ../shared/data/web_es/web_es_mix.jsonl.gz -o b.json
      bench sample boundaries -i out/scored -o b.json --n-docs 50000 --reservoir
    """
    from sampling.boundaries import estimate_boundaries

    b = estimate_boundaries(input_, scorer=_scorer(lm_dir, mode, normalization), n_docs=n_docs, text_key=text_key,
                            reservoir=reservoir, seed=seed, max_chars=max_chars)
    b.save(out)
    click.echo(f"Q1={b.q1:,.2f}  median={b.q2:,.2f}  Q3={b.q3:,.2f}  on {b.n:,} docs ({b.mode} mode) "
               f"with {b.identity['normalization']['name']} normalization"
               + (f"; skipped {b.skipped}" if b.skipped else "") + f" -> {out}")


@sample.command()
@_engine_options
@click.option("--strategy", "-s", type=click.Choice(["random", "stepwise", "gaussian"]), default="gaussian",
              show_default=True)
@click.option("--boundaries", "boundaries_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="From `bench sample boundaries` (default: estimated on the first --boundary-docs documents).")
@click.option("--boundary-docs", default=10_000, show_default=True, help="Sample size when estimating boundaries here.")
@click.option("--target-fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Calibrate the factor so the expected kept fraction is this.")
@click.option("--target-docs", type=click.IntRange(1), default=None, help="Calibrate the factor for this many kept documents.")
@click.option("--target-tokens", type=click.IntRange(1), default=None,
              help="Calibrate the factor for this many kept whitespace words (the stats' tokens_kept).")
@click.option("--factor", type=float, default=None, help="Strategy factor (default: BERTIN's, or calibrated).")
@click.option("--width", type=float, default=None, help="Gaussian width (default 9/2).")
@click.option("--seed", default=0, show_default=True, help="Seed of the keep hash.")
@user_errors
def run(input_, out, lm_dir, mode, normalization, strategy, boundaries_file, boundary_docs, target_fraction, target_docs,
        target_tokens, factor, width, seed, **engine):
    """Sample documents by perplexity: OUT/data/NNNNN.jsonl.gz (+ stats.json, perplexity_hist.png).

    A document is kept when a hash of (seed, its text or --id-key, its perplexity) falls below the
    strategy's keep probability: the same documents are kept whatever the order, the number of tasks
    or an interruption. Rerun the same command to resume a killed run.

    \b
    Examples:
      bench sample run -i ../shared/data/web_es/web_es_mix.jsonl.gz -o out/gauss \\
          --strategy gaussian --target-fraction 0.3
      bench sample run -i out/scored -o out/step --strategy stepwise --boundaries b.json --target-docs 10000
      bench sample run -i out/scored -o out/tok --strategy gaussian --target-tokens 2000000
      bench sample run -i web.jsonl.gz -o out/rand --strategy random --factor 0.5 --tasks 4 --workers 2
    """
    from sampling.boundaries import Boundaries
    from sampling.pipeline import run_sample

    options = _score_options(out, **engine)
    b = Boundaries.load(boundaries_file) if boundaries_file else None
    if b is not None and mode is None:
        mode = b.mode  # the boundaries only make sense in the mode they were estimated with
    sample = SampleOptions(strategy=strategy, boundaries=b, target_fraction=target_fraction, target_docs=target_docs,
                           target_tokens=target_tokens, factor=factor, width=width, seed=seed,
                           boundary_docs=boundary_docs)
    stats = run_sample(input_, out, sample=sample, scorer=_scorer(lm_dir, mode, normalization), options=options)
    _print_summary(stats, out)


@sample.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@user_errors
def stats(out):
    """(Re)build OUT/stats.json and the histogram from the per-task files, e.g. after a Slurm run.

    \b
    Examples:
      bench sample stats out/gauss
    """
    from bertin_bench.io import read_json
    from sampling.boundaries import Boundaries
    from sampling.executors import completion_view
    from sampling.stats import LOGS, aggregate
    from sampling.strategies import make_strategy

    if not (Path(out) / "run.json").is_file():
        raise click.ClickException(f"{out} is not the output of `bench sample score` or `bench sample run` "
                                   "(it has no run.json): pass the --out directory of one")
    config = read_json(Path(out) / "run.json")["config"]
    strat = config.get("strategy")
    strategy = make_strategy(strat.pop("name"), **strat) if strat else None
    bfile = Path(out) / "boundaries.json"
    b = Boundaries.load(bfile) if bfile.exists() else None
    executor = completion_view(str(Path(out) / LOGS), tasks=config["tasks"])
    result = aggregate(out, executor=executor, config=config, strategy=strategy, boundaries=b)
    _print_summary(result, out)
    if result.get("status") == "complete":
        click.echo(json.dumps({k: result[k] for k in ("seen", "kept", "kept_fraction", "skipped")}, indent=2))
