"""Tiny stand-ins of the registry's Hub models, in a Hugging Face cache laid out as the Hub lays it
out (``models--owner--name/{blobs,snapshots/<commit>,refs/main}``, snapshot files symlinked to
content-named blobs), built in-process: nothing downloads."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

TINY = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)


def commit_of(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def put_in_cache(cache: Path, repo_id: str, model_dir: Path, commit: str, ref: str | None = "main") -> Path:
    """Store ``model_dir``'s files as the snapshot ``commit`` of ``repo_id``; ``ref`` points at it."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(p for p in model_dir.iterdir() if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snap / file.name
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(blob, snap), link)
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap


def wordpiece_tokenizer(out: Path, corpus: Path):
    """A cased BERT WordPiece tokenizer (like BETO's and mBERT's) trained on a CoNLL file's words."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    words = [line.split()[0] for line in corpus.read_text(encoding="latin-1").splitlines()[:20000] if line.strip()]
    wp = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    wp.train_from_iterator([" ".join(words[i:i + 50]) for i in range(0, len(words), 50)], vocab_size=1500)
    out.mkdir(parents=True, exist_ok=True)
    wp.save_model(str(out))
    tok = BertTokenizerFast(vocab_file=str(out / "vocab.txt"), do_lower_case=False, strip_accents=False)
    tok.save_pretrained(str(out))
    return tok


def bert_model(out: Path, tok, weights: str, seed: int = 0) -> Path:
    from transformers import BertConfig

    config = BertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, max_position_embeddings=128,
                        type_vocab_size=2, **TINY)
    return _save(out, config, weights, "Bert", seed)


def roberta_model(out: Path, tok, weights: str, seed: int = 0) -> Path:
    from transformers import RobertaConfig

    config = RobertaConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, max_position_embeddings=130, type_vocab_size=1, **TINY)
    return _save(out, config, weights, "Roberta", seed)


def _save(out: Path, config, weights: str, family: str, seed: int) -> Path:
    """Save a masked-LM with ``weights`` only: "flax", "safetensors" or "pt" (pytorch_model.bin)."""
    import transformers

    out.mkdir(parents=True, exist_ok=True)
    if weights == "flax":
        getattr(transformers, f"Flax{family}ForMaskedLM")(config, seed=seed).save_pretrained(str(out))
    else:
        import torch

        torch.manual_seed(seed)
        model = getattr(transformers, f"{family}ForMaskedLM")(config)
        model.save_pretrained(str(out), safe_serialization=weights == "safetensors")
    return out


def copy_tokenizer(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
