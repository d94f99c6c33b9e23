"""Tokenizers: reuse an existing directory (BERTIN's byte-level BPE) or train a new byte-level BPE
with RoBERTa's special tokens on the sampled shards.

A trained tokenizer directory carries ``TRAINED_INFO``, which says it was written here: only such a
directory (or an empty one) is ever replaced by a new training, so an ``--out`` pointing at data,
or at a tokenizer downloaded from elsewhere, is refused instead of deleted.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path
from typing import Iterable, Sequence

from bertin_bench import markers, paths
from bertin_bench.io import atomic_dir, write_json_atomic

log = logging.getLogger(__name__)

# RoBERTa's special tokens, in the order that gives them ids 0..4 (as in roberta-base and BERTIN).
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
TRAINED_INFO = "bertin_tokenizer.json"
# The files that make a tokenizer (what ``from_pretrained`` reads). A source folder may hold more
# (BERTIN's has a model card, PROVENANCE.md, a licence and the 12-layer model's config.json): those
# describe another artefact, so they are neither copied into checkpoints nor part of its identity.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json")


def load_tokenizer(path: str | Path):
    """A ``RobertaTokenizerFast`` from a directory, with a clear error when it is not one."""
    from transformers import RobertaTokenizerFast

    path = paths.resolve(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory {path} not found")
    if not (path / "tokenizer.json").exists() and not (path / "vocab.json").exists():
        raise FileNotFoundError(f"{path} is not a tokenizer directory (no tokenizer.json or vocab.json)")
    tok = RobertaTokenizerFast.from_pretrained(str(path))
    # Blocks are cut by us, never truncated by the tokenizer: silence its length warning.
    tok.model_max_length = int(1e30)
    missing = [t for t in SPECIAL_TOKENS if tok.convert_tokens_to_ids(t) in (None, tok.unk_token_id) and t != "<unk>"]
    if missing:
        raise ValueError(f"tokenizer {path} lacks RoBERTa special tokens {missing}")
    return tok


def tokenizer_files(path: str | Path) -> list[Path]:
    """The tokenizer files of a directory (see ``TOKENIZER_FILES``), in that order."""
    path = Path(path)
    found = [path / f for f in TOKENIZER_FILES if (path / f).is_file()]
    if not any(f.name in ("tokenizer.json", "vocab.json") for f in found):
        raise FileNotFoundError(f"{path} is not a tokenizer directory (no tokenizer.json or vocab.json)")
    return found


def copy_tokenizer(src: str | Path, dst: str | Path) -> Path:
    """Copy the tokenizer files of ``src`` (and the record of a tokenizer trained here) into the
    new directory ``dst``; nothing else of ``src`` comes along."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True)
    extra = [src / TRAINED_INFO] if (src / TRAINED_INFO).is_file() else []
    for f in tokenizer_files(src) + extra:
        shutil.copyfile(f, dst / f.name)
    return dst


def check_vocab(tokenizer, vocab_size: int, where: str = "model.vocab_size") -> None:
    if len(tokenizer) != vocab_size:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but {where}={vocab_size}: they must agree "
            f"(set {where}={len(tokenizer)} or use another tokenizer)"
        )


def train_bpe(
    files: Sequence[str | Path] | str | Path,
    out_dir: str | Path,
    vocab_size: int,
    *,
    min_frequency: int = 2,
    max_docs: int | None = 100_000,
    text_field: str = "text",
) -> Path:
    """Train a byte-level BPE (RoBERTa special tokens) on the ``text`` of shard files; write a
    ``RobertaTokenizerFast`` directory atomically and return it.

    ``files`` is anything :func:`pretraining.data.resolve_files` accepts (a shard directory, glob,
    file, or a list of them). ``max_docs`` caps the documents read (a sample suffices for merges).
    ``out_dir`` must be new, empty, or a tokenizer trained here before (which is replaced); anything
    else is refused before any work, and nothing is deleted.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    from pretraining.data import iter_documents, resolve_files

    out_dir = Path(out_dir)
    replace = check_tokenizer_out(out_dir)
    shard_files = resolve_files(files)
    texts: Iterable[str] = (doc.text for doc in iter_documents(shard_files, text_field=text_field))
    if max_docs:
        texts = itertools.islice(texts, max_docs)
    counted = _Counter(texts)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(counted, vocab_size=vocab_size, min_frequency=min_frequency,
                            special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    if counted.n == 0:
        raise ValueError(f"no documents with text in {[str(f) for f in shard_files]}")
    key = {"files": [str(f) for f in shard_files], "vocab_size": vocab_size, "min_frequency": min_frequency,
           "max_docs": max_docs, "text_field": text_field}
    with atomic_dir(out_dir, replace=replace) as tmp:
        bpe.save(str(tmp / "tokenizer.json"))
        bpe.save_model(str(tmp))
        fast = RobertaTokenizerFast(vocab_file=str(tmp / "vocab.json"), merges_file=str(tmp / "merges.txt"),
                                    tokenizer_file=str(tmp / "tokenizer.json"))
        fast.save_pretrained(str(tmp))
        write_json_atomic(tmp / TRAINED_INFO, {**markers.stamp(key), "documents": counted.n, "tokens": len(fast)})
    log.info("trained a %d-token byte-level BPE on %d documents -> %s", len(fast), counted.n, out_dir)
    if len(fast) < vocab_size:
        log.warning("the corpus only supports %d tokens (asked %d): set model.vocab_size=%d",
                    len(fast), vocab_size, len(fast))
    return out_dir


def check_tokenizer_out(out_dir: Path) -> bool:
    """May a new tokenizer be written to ``out_dir``? True when it replaces one (an empty directory,
    or a tokenizer trained here), False when ``out_dir`` is new; an error otherwise."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory: choose another --out")
    if (out_dir / TRAINED_INFO).is_file() or not any(out_dir.iterdir()):
        return True
    raise FileExistsError(
        f"{out_dir} is not empty and holds no tokenizer trained by bench: nothing was deleted. "
        f"Pass a new or empty directory as --out (e.g. {out_dir / 'tokenizer'}), "
        "or remove this one yourself if it is really meant to be replaced")


class _Counter:
    """An iterator wrapper that counts what it yields (to report and to detect an empty corpus)."""

    def __init__(self, it: Iterable[str]):
        self._it, self.n = iter(it), 0

    def __iter__(self):
        for x in self._it:
            self.n += 1
            yield x
