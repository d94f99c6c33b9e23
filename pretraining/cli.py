"""``bench pretrain``: train (the group itself), ``export`` and ``tokenizer`` subcommands. Thin:
parse, call :mod:`pretraining.train` / :mod:`pretraining.checkpoint` / :mod:`pretraining.tokenizer`,
print."""

from __future__ import annotations

import json

import click

from bertin_bench.errors import user_errors


class _TrainOrSubcommand(click.Group):
    """``bench pretrain [OPTIONS] [key=value ...]`` trains; ``bench pretrain export|tokenizer ...``
    runs a subcommand. Click cannot mix a variadic argument with subcommands, so the overrides
    are taken out of the arguments here when the first positional is not a subcommand."""

    _VALUED = ("--config", "-c", "--out", "--coordinator", "--num-processes", "--process-id", "--heartbeat-timeout")

    def parse_args(self, ctx, args):
        positional, rest, i = [], [], 0
        while i < len(args):
            a = args[i]
            if a in self._VALUED and i + 1 < len(args):
                rest += [a, args[i + 1]]
                i += 2
                continue
            (rest if a.startswith("-") else positional).append(a)
            i += 1
        if positional and positional[0] in self.commands:
            return super().parse_args(ctx, args)
        ctx.meta["pretrain.overrides"] = positional
        return super().parse_args(ctx, rest)


@click.group(cls=_TrainOrSubcommand, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_name", default="tiny", show_default=True,
              help="Preset name (tiny, small, base = configs/pretrain/NAME.yaml) or a YAML path.")
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in the run directory.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run directory (overrides out_dir).")
@click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
@click.option("--coordinator", metavar="HOST:PORT|auto",
              help="Multi-process run: process 0's address (every process passes the same), or `auto` for "
                   "JAX's cluster detection (TPU pod slice). Slurm (srun) and mpirun are detected without it.")
@click.option("--num-processes", type=int, help="Multi-process run: the number of processes.")
@click.option("--process-id", type=int, help="Multi-process run: this process's id, 0..N-1 (0 writes the outputs).")
@click.option("--heartbeat-timeout", type=int, default=60, show_default=True,
              help="Multi-process run: seconds without a heartbeat before a process counts as dead and the job fails.")
@click.pass_context
@user_errors
def pretrain(ctx, config_name, resume, out_dir, print_config, coordinator, num_processes, process_id,
             heartbeat_timeout):
    """Pre-train a RoBERTa masked LM (JAX/Flax) on sampled shards.

    Usage: bench pretrain [--config NAME|PATH] [--out DIR] [--resume] [section.key=value ...]

    Overrides are dotted ``section.key=value`` settings (values parsed as YAML); unknown keys are
    errors. The run directory gets checkpoints/step_*/ (full state, metadata.json, config.yaml,
    tokenizer/), metrics.jsonl, loss_curve.png and summary.json.

    \b
    Examples:
      bench pretrain --config tiny data.train_files=[out/gaussian/data] --out runs/tiny
      bench pretrain --config tiny --out runs/tiny --resume
      bench pretrain --config small training.max_tokens=200_000_000 training.batch_size=256
      bench pretrain --config base training.seq_len=512 training.max_steps=25000 \\
          training.init_from=runs/base/checkpoints/step_00230000 training.reset_optimizer=true \\
          --out runs/base-512
      bench pretrain export runs/tiny/checkpoints/step_00000300 models/tiny-gaussian
      bench pretrain tokenizer --data out/gaussian/data --vocab-size 50265 --out tokenizers/gaussian
      # 2 processes (here on one machine); on a cluster see docs/scale.md
      bench pretrain --config tiny --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 0 &
      bench pretrain --config tiny --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 1
    """
    if ctx.invoked_subcommand is not None:
        return
    from pretraining.config import load_config

    extra = list(ctx.meta.get("pretrain.overrides", [])) + ([f"out_dir={out_dir}"] if out_dir else [])
    cfg = load_config(config_name, extra)
    if print_config:
        click.echo(cfg.to_yaml())
        return
    from pretraining import distributed

    distributed.initialize(distributed.detect(coordinator, num_processes, process_id),
                           heartbeat_timeout=heartbeat_timeout)
    from pretraining.train import train

    try:
        summary = train(cfg, resume=resume)
    except distributed.PeerLost as err:
        distributed.exit_now(err)
    if distributed.is_main():
        click.echo(json.dumps(summary, indent=2))


@pretrain.command("export")
@click.argument("checkpoint_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", required=False, type=click.Path(file_okay=False))
@click.option("--pytorch", is_flag=True,
              help="Require PyTorch weights (model.safetensors); with one directory, add them to that existing export.")
@user_errors
def export_cmd(checkpoint_dir, out_dir, pytorch):
    """Export a checkpoint (or a run directory's latest) as a Hugging Face model directory.

    The result loads with transformers.FlaxAutoModelForMaskedLM.from_pretrained(OUT_DIR) and, when
    torch is installed, with AutoModelForMaskedLM / pipeline("fill-mask") too (model.safetensors).
    It holds bertin_pretraining.json (steps, tokens_seen, seq_len, config, data, tokenizer,
    provenance): the only file with dates and paths, so two exports of one checkpoint are otherwise
    byte-identical.

    \b
    Examples:
      bench pretrain export runs/tiny/checkpoints/step_00000300 models/tiny
      bench pretrain export runs/tiny models/tiny        # latest checkpoint of the run
      bench pretrain export --pytorch models/tiny        # add PyTorch weights to an export
    """
    from pretraining import checkpoint

    if out_dir is None:
        if not pytorch:
            raise click.UsageError("missing OUT_DIR (or pass --pytorch EXPORT_DIR to add PyTorch weights to an export)")
        click.echo(str(checkpoint.add_pytorch_weights(checkpoint_dir)))
        return
    click.echo(str(checkpoint.export_hf(checkpoint_dir, out_dir, pytorch=True if pytorch else None)))
    if not checkpoint.torch_available():
        click.echo(f"no PyTorch weights (torch is not installed): pip install 'bertin-bench[torch]', then "
                   f"bench pretrain export --pytorch {out_dir}", err=True)


@pretrain.command("tokenizer")
@click.option("--data", "data", multiple=True, required=True,
              help="Shard directory, glob or file (repeatable); the `text` field is used.")
@click.option("--vocab-size", type=int, default=50265, show_default=True, help="Vocabulary size, specials included.")
@click.option("--min-frequency", type=int, default=2, show_default=True, help="Minimum pair count for a merge.")
@click.option("--max-docs", type=int, default=100_000, show_default=True, help="Documents read (0 = all).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output tokenizer directory: new, empty, or a tokenizer this command wrote (replaced).")
@user_errors
def tokenizer_cmd(data, vocab_size, min_frequency, max_docs, out_dir):
    """Train a byte-level BPE with RoBERTa's special tokens (<s>, <pad>, </s>, <unk>, <mask>).

    \b
    Examples:
      bench pretrain tokenizer --data out/gaussian/data --vocab-size 50265 --out tokenizers/gaussian
      bench pretrain --config tiny tokenizer.path=tokenizers/gaussian
    """
    from pretraining.tokenizer import train_bpe

    click.echo(str(train_bpe(list(data), out_dir, vocab_size, min_frequency=min_frequency, max_docs=max_docs or None)))
