"""Document perplexity with a KenLM 5-gram and a sentencepiece model (the CCNet recipe).

Three modes (``PerplexityScorer(mode=...)``):

``ccnet``
    Bit-compatible with the edugp/CCNet ``KenlmModel.get_perplexity`` that BERTIN-era tools used:
    normalize the WHOLE document (this removes newlines), ``" ".join(sp.encode_as_pieces(doc))``,
    ``model.score(line)`` per line with bos/eos, length ``len(line.split()) + 1``,
    ``pp = 10 ** (-sum / length)`` rounded to 0.1.
``lines`` (default)
    The same normalization applied line by line so line breaks survive; every non-empty line is
    one KenLM sentence; same formula, not rounded. A document with no scorable line is NaN.
``raw``
    What BERTIN actually ran on mC4: no normalization, no sentencepiece, whitespace words of
    each ``\\n``-separated line; not rounded.

Speed (see ``benchmarks/bench_scoring.py``): a batch of documents goes through one stage at a
time: one normalization per document (NFD plus a replace of only the characters present), one
``sp.encode_as_ids`` (piece strings then come from a table: no Python string per piece) and one
``model.score`` per KenLM line, so per-document Python work is a handful of C calls. KenLM and
sentencepiece load lazily on first use, and ``__getstate__`` drops them, so a scorer pickles cheaply
into datatrove worker processes.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from bertin_bench import paths
from bertin_bench.provenance import hash_file
from sampling.normalize import normalize, normalize_lines

MODES = ("ccnet", "lines", "raw")
HUB_REPO = "edugp/kenlm"
HUB_PREFIX = "hf://"
DEFAULT_LANG = "es"

# Files up to this size are hashed whole; bigger ones (real CCNet LMs are several GB) by size plus
# their first and last 8 MiB, which is content-based and machine-independent yet takes milliseconds.
_FULL_HASH_LIMIT = 256 << 20
_EDGE = 8 << 20


def quick_file_hash(path: str | os.PathLike) -> str:
    """sha256 of the file (small files) or of size + first/last 8 MiB (big files), prefixed to say which."""
    path = Path(path)
    size = path.stat().st_size
    if size <= _FULL_HASH_LIMIT:
        return "sha256:" + hash_file(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(str(size).encode())
        h.update(f.read(_EDGE))
        f.seek(size - _EDGE)
        h.update(f.read(_EDGE))
    return "sha256-edges:" + h.hexdigest()


def _pp(log10_sum: float, length: int) -> float:
    return 10.0 ** (-log10_sum / length)


_LAST_SPACE = 0x3000  # IDEOGRAPHIC SPACE, the highest code point with str.isspace()


def _pieces_never_hold_whitespace(sp) -> bool:
    """Whether every whitespace character that survives CCNet normalization is turned into a
    piece boundary by this sentencepiece model (its normalizer maps it to a space). Then
    ``len(pieces) == len(" ".join(pieces).split())`` for every text."""
    # Unicode has no whitespace above U+3000 (tested); a regex scan beats a str.isspace() loop 4x.
    spaces = re.findall(r"\s", "".join(map(chr, range(_LAST_SPACE + 1))))
    return not any(ch.isspace() for ws in spaces
                   for piece in sp.encode_as_pieces(normalize(f"a{ws}b")) for ch in piece)


class PerplexityScorer:
    """KenLM + sentencepiece document perplexity, lazily loaded and picklable.

    ``model_dir``: a local directory holding ``{lang}.arpa.bin`` and ``{lang}.sp.model``; or
    ``hf://OWNER/REPO/SUBDIR`` (e.g. ``hf://edugp/kenlm/wikipedia``) for the Hub; or None for
    ``kenlm_es`` in the data directory, falling back to ``hf://edugp/kenlm/wikipedia`` when no data
    directory exists. ``kenlm_path`` / ``sp_path`` override single files.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        kenlm_path: str | os.PathLike | None = None,
        sp_path: str | os.PathLike | None = None,
        mode: str = "lines",
        lang: str = DEFAULT_LANG,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown scoring mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode = mode
        self.lang = lang
        if model_dir is None and (kenlm_path is None or sp_path is None):
            local = paths.data_dir()
            model_dir = local / "kenlm_es" if local is not None else f"{HUB_PREFIX}{HUB_REPO}/wikipedia"
        self.hub: tuple[str, str] | None = None  # (repo_id, subdir) when files come from the Hub
        if model_dir is not None and str(model_dir).startswith(HUB_PREFIX):
            parts = str(model_dir)[len(HUB_PREFIX):].strip("/").split("/")
            if len(parts) < 2:
                raise ValueError(f"Hub model dir must look like hf://OWNER/REPO[/SUBDIR], got {model_dir!r}")
            self.hub = ("/".join(parts[:2]), "/".join(parts[2:]))
            self.kenlm_path = str(kenlm_path) if kenlm_path else None
            self.sp_path = str(sp_path) if sp_path else None
        else:
            base = Path(model_dir) if model_dir is not None else None
            self.kenlm_path = str(kenlm_path or base / f"{lang}.arpa.bin")
            self.sp_path = str(sp_path or base / f"{lang}.sp.model")
            needed = [self.kenlm_path] + ([self.sp_path] if mode != "raw" else [])
            for file in needed:
                if not Path(file).is_file():
                    raise FileNotFoundError(
                        f"language model file {file} not found (expected {lang}.arpa.bin and "
                        f"{lang}.sp.model in the model directory; set --lm-dir or --data-dir)"
                    )
        self._model = None
        self._sp = None
        self._pieces_are_words = False  # these three are set when sentencepiece loads
        self._piece_table: list[str] = []
        self._unk_id = -1
        self._identity: dict | None = None

    # -- loading ------------------------------------------------------------------------------

    def _resolve(self, which: str) -> str:
        local = self.kenlm_path if which == "kenlm" else self.sp_path
        if local is not None:
            return local
        from huggingface_hub import hf_hub_download

        repo_id, subdir = self.hub
        name = f"{self.lang}.arpa.bin" if which == "kenlm" else f"{self.lang}.sp.model"
        path = hf_hub_download(repo_id, f"{subdir}/{name}" if subdir else name)
        if which == "kenlm":
            self.kenlm_path = path
        else:
            self.sp_path = path
        return path

    @property
    def model(self):
        if self._model is None:
            import kenlm

            self._model = kenlm.Model(self._resolve("kenlm"))
        return self._model

    @property
    def sp(self):
        if self._sp is None:
            import sentencepiece

            sp = sentencepiece.SentencePieceProcessor(model_file=self._resolve("sp"))
            self._pieces_are_words = _pieces_never_hold_whitespace(sp)
            self._piece_table = sp.id_to_piece(list(range(sp.get_piece_size())))  # one C++ call
            self._unk_id = sp.unk_id()
            self._sp = sp
        return self._sp

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_model"] = None  # C objects do not pickle; each process reloads on first use
        state["_sp"] = None
        state["_piece_table"] = []  # rebuilt with sentencepiece (50k strings would bloat every pickle)
        return state

    def identity(self) -> dict:
        """What makes two scorers' numbers comparable: LM and sentencepiece content hashes, mode."""
        if self._identity is None:
            kenlm_file = self._resolve("kenlm")
            sp_file = self._resolve("sp") if self.mode != "raw" else None
            self._identity = {
                "lm": Path(kenlm_file).name,
                "lm_hash": quick_file_hash(kenlm_file),
                "sp": Path(sp_file).name if sp_file else None,
                "sp_hash": quick_file_hash(sp_file) if sp_file else None,
                "mode": self.mode,
            }
        return dict(self._identity)

    def describe(self) -> dict:
        """identity() plus where the files were found (for stats/provenance, not for comparison)."""
        return {**self.identity(), "lm_path": self.kenlm_path, "sp_path": self.sp_path}

    # -- scoring --------------------------------------------------------------------------------

    def perplexity(self, text: str) -> float:
        return self.perplexities([text])[0]

    def perplexities(self, texts: Sequence[str]) -> list[float]:
        """Perplexities of a batch of documents (NaN for a ``lines``-mode document with no scorable line)."""
        if self.mode == "ccnet":
            return self._ccnet(texts)
        if self.mode == "lines":
            return self._lines(texts)
        return self._raw(texts)

    def _pieces(self, texts: list[str]) -> tuple[list[str], list[int]]:
        """``" ".join(sp.encode_as_pieces(t))`` of each text, and its word count (edugp's
        ``len(line.split())``), computed faster but identically.

        ``encode_as_ids`` skips building one Python string per piece (~30% of the encode time),
        and the piece strings come from a table built once. That equals ``encode_as_pieces``
        except for an unknown piece, which ``encode_as_pieces`` spells as its surface text (the
        table would say ``<unk>``): a text holding the unknown id is re-encoded as pieces.
        The word count is the piece count when no piece of this model can hold whitespace
        (checked at load), else the split of the joined line.
        """
        sp = self.sp  # loads the table
        table, unk, encode_pieces = self._piece_table, self._unk_id, sp.encode_as_pieces
        lines, counts = [], []
        for text, ids in zip(texts, map(sp.encode_as_ids, texts)):
            line = " ".join(encode_pieces(text)) if unk in ids else " ".join([table[i] for i in ids])
            lines.append(line)
            counts.append(len(ids) if self._pieces_are_words else len(line.split()))
        return lines, counts

    # Each batch goes through one stage at a time (normalize all, encode all, score all) rather
    # than one document at a time: sentencepiece's and KenLM's tables then stay in the CPU cache
    # for a whole stage instead of evicting each other at every document.

    def _ccnet(self, texts: Sequence[str]) -> list[float]:
        # Normalization removed every newline, so each tokenized document is one KenLM line.
        lines, counts = self._pieces(list(map(normalize, texts)))
        return [round(_pp(s, n + 1), 1) for s, n in zip(map(self.model.score, lines), counts)]

    def _lines(self, texts: Sequence[str]) -> list[float]:
        per_doc = [normalize_lines(t) for t in texts]
        lines, counts = self._pieces([line for doc in per_doc for line in doc])
        scores = list(map(self.model.score, lines))
        out, i = [], 0
        for doc in per_doc:
            j = i + len(doc)
            out.append(_pp(sum(scores[i:j]), sum(counts[i:j]) + len(doc)) if doc else math.nan)
            i = j
        return out

    def _raw(self, texts: Iterable[str]) -> list[float]:
        score = self.model.score
        out = []
        for text in texts:
            log_sum, length = 0.0, 0
            for line in text.split("\n"):
                log_sum += score(line)
                length += len(line.split()) + 1
            out.append(_pp(log_sum, length))
        return out

    def __repr__(self) -> str:
        where = f"hf://{'/'.join(self.hub)}" if self.hub else self.kenlm_path
        return f"PerplexityScorer({where!r}, mode={self.mode!r})"
