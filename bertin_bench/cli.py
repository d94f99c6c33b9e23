"""The ``bench`` command: a thin root that dispatches to each stage's own command group.

Subcommands are imported lazily so that ``bench --help`` and ``bench sample ...`` do not pay for
importing JAX and transformers.
"""

from __future__ import annotations

import importlib
import logging

import click

from bertin_bench import __version__, paths

# name -> "module:attribute" of a click command or group; the stage packages own these.
COMMANDS = {
    "sample": ("sampling.cli:sample", "Perplexity sampling of a corpus (score, boundaries, run)."),
    "lm": ("sampling.lm_cli:lm", "Train a CCNet-style KenLM reference model."),
    "pretrain": ("pretraining.cli:pretrain", "Flax RoBERTa masked-LM pre-training and export."),
    "run": ("benchmark.cli:run", "Fine-tune a model on Spanish tasks, several seeds."),
    "leaderboard": ("benchmark.cli:leaderboard", "Rebuild results/leaderboard.{csv,md} from result files."),
    "compare": ("benchmark.cli:compare", "Compare models per task with a significance test."),
    "ls": ("benchmark.cli:ls", "List the task and model registries."),
    "study": ("study.cli:study", "The strategy study end to end: sample, pre-train, benchmark."),
}


DATA_DIR_HELP = (f"Local data directory (default: ${paths.ENV_VAR}, else ../shared/data when it exists). "
                 "Accepted before or after the subcommand.")


def _set_data_dir(ctx, param, value):
    if value is not None:
        paths.set_data_dir(value)
    return value


def with_data_dir(cmd: click.Command) -> click.Command:
    """Give ``cmd`` (and, for a group, every subcommand) a ``--data-dir`` option, so that
    ``bench run --data-dir D`` works as well as ``bench --data-dir D run``: users put options after
    the subcommand. The value goes to ``paths.set_data_dir`` while the command line is parsed."""
    if not any(isinstance(p, click.Option) and "--data-dir" in p.opts for p in cmd.params):
        cmd.params.append(click.Option(
            ["--data-dir"], type=click.Path(file_okay=False, path_type=str), expose_value=False,
            callback=_set_data_dir, help=DATA_DIR_HELP))
    for sub in getattr(cmd, "commands", {}).values():
        with_data_dir(sub)
    return cmd


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module, attr = target.split(":")
        try:
            return with_data_dir(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError) as err:
            # A stage whose dependencies are missing must not break the other commands.
            reason = f"{type(err).__name__}: {err}"

            @click.command(name=name, help=f"(unavailable: {reason})")
            def _unavailable():
                raise click.ClickException(f"`bench {name}` is unavailable: {reason}")

            return _unavailable

    def format_commands(self, ctx, formatter):
        # Use the short help from COMMANDS so --help does not import every stage.
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bench")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=str),
    envvar=paths.ENV_VAR,
    help=DATA_DIR_HELP,
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(data_dir: str | None, verbose: int) -> None:
    """BERTIN bench: perplexity sampling, RoBERTa pre-training and Spanish benchmarks.

    \b
    Examples:
      bench sample boundaries --input web.jsonl.gz --out boundaries.json
      bench pretrain --config tiny
      bench run --model bertin-roberta-base --task ner_conll2002_es --seeds 3
      bench leaderboard
      bench study configs/study/demo.yaml
    """
    paths.set_data_dir(data_dir)
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(name)s %(levelname)s %(message)s")


if __name__ == "__main__":  # pragma: no cover
    main()
