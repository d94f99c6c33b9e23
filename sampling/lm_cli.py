"""``bench lm``: train a CCNet-style reference KenLM model. Thin: parse options, call sampling.lm."""

from __future__ import annotations

import logging

import click

from bertin_bench.errors import user_errors
from sampling import lm as lm_lib


@click.group(name="lm")
def lm() -> None:
    """Reference KenLM models for perplexity scoring (the CCNet recipe)."""


@lm.command(name="train", short_help="Train LANG.arpa.bin + LANG.sp.model from a text file.")
@click.option("--text", "text", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="UTF-8 training text, one sentence or paragraph per line (e.g. a Wikipedia dump).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output directory: LANG.arpa.bin, LANG.sp.model, normalization.json, lm_meta.json.")
@click.option("--lang", default="es", show_default=True, help="Language code used in the file names.")
@click.option("--vocab-size", default=lm_lib.DEFAULT_VOCAB_SIZE, show_default=True, type=click.IntRange(10),
              help="Sentencepiece unigram vocabulary (CCNet used 65k on full Wikipedia dumps).")
@click.option("--order", default=lm_lib.DEFAULT_ORDER, show_default=True, type=click.IntRange(1, 6),
              help="N-gram order.")
@click.option("--prune", default=" ".join(map(str, lm_lib.DEFAULT_PRUNE)), show_default=True,
              help='lmplz --prune count thresholds per order, e.g. "0 0 1" drops singleton 3..5-grams; '
                   '"0" disables pruning.')
@click.option("--quantize/--no-quantize", default=True, show_default=True,
              help="8-bit quantized trie (build_binary -q 8 -b 8), as the shared model.")
@click.option("--sp-sample-lines", default=lm_lib.DEFAULT_SP_SAMPLE_LINES, show_default=True,
              type=click.IntRange(1), help="Sentencepiece trains on a shuffled sample of at most this many lines.")
@click.option("--normalization", type=click.Choice(["cc_net", "edugp", "raw"]), default="cc_net", show_default=True,
              help="How the text is normalized (recorded in OUT/normalization.json, which the scorer follows): "
                   "cc_net lowercases and strips accents as CCNet; edugp keeps case and accents; raw: none.")
@click.option("--normalize/--no-normalize", default=True, show_default=True,
              help="Apply --normalization to each line first (turn off only for text already normalized so).")
@click.option("--max-lines", default=None, type=click.IntRange(1), help="Use only the first N lines (for trials).")
@click.option("--memory", default="20%", show_default=True,
              help="Memory cap for lmplz/build_binary (-S): a percentage of RAM or a size like 4G.")
@click.option("--threads", default=None, type=click.IntRange(1), help="Sentencepiece threads (default: all cores).")
@click.option("--tmp-dir", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Where the normalized text and ARPA go while training (default: next to --out).")
@click.option("--keep-arpa", is_flag=True, help="Also keep the intermediate LANG.arpa in --out.")
@click.option("--force", is_flag=True, help="Retrain even if --out already holds a model of this text and options.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or stage messages.")
@user_errors
def train(text, out, lang, vocab_size, order, prune, quantize, sp_sample_lines, normalization, normalize, max_lines,
          memory, threads, tmp_dir, keep_arpa, force, quiet) -> None:
    """Train LANG.sp.model + LANG.arpa.bin: normalize, sentencepiece, lmplz, build_binary.

    The output directory is what `bench sample --lm-dir` loads. Needs KenLM's lmplz and
    build_binary: `bash tools/build_kenlm.sh` builds them into tools/kenlm-bin/ (or set $KENLM_BIN).
    Rerunning with the same text and options does nothing.

    \b
    Examples:
      bench lm train --text ../shared/data/wiki_es/wiki_es.txt --out models/kenlm_es
      bench lm train --text wiki.txt --out models/es_small --vocab-size 8000 --max-lines 5000
      bench lm train --text wiki.txt --out models/es_cased --normalization edugp
      bench lm train --text eswiki.txt --out models/es_ccnet --vocab-size 65000 --memory 8G --tmp-dir /scratch
      bench sample score --input web.jsonl.gz --lm-dir models/kenlm_es --out out/scored
    """
    if not quiet:
        # The root command logs warnings only unless -v; training is long, so show its stages.
        logging.getLogger(lm_lib.__name__).setLevel(logging.INFO)
    meta = lm_lib.train_lm(
        text, out, lang=lang, vocab_size=vocab_size, order=order, prune=prune, quantize=quantize,
        sp_sample_lines=sp_sample_lines, normalize=normalize, normalization=normalization, max_lines=max_lines, memory=memory,
        threads=threads, keep_arpa=keep_arpa, tmp_dir=tmp_dir, force=force, progress=not quiet,
    )
    files = meta["files"]
    click.echo(
        f"{out}: {files['kenlm']['name']} ({files['kenlm']['bytes'] / 1e6:.1f} MB), "
        f"{files['sp_model']['name']} ({files['sp_model']['bytes'] / 1e6:.1f} MB); "
        f"{meta['input']['lines_used']:,} lines, {meta['input']['tokens']:,} tokens, "
        f"n-grams {', '.join(f'{k}:{v:,}' for k, v in meta['ngrams'].items())}"
    )
