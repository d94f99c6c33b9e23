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

What "normalize" means is the scorer's :class:`~sampling.normalize.Normalization`, chosen by the
model's source unless given (:func:`default_normalization`): a ``normalization.json`` next to the
model (written by ``bench lm train``) is binding; a Hub model or a directory named after edugp gets
``edugp`` (case and accents kept); other local models ``cc_net``; ``raw`` mode ``raw``. It is part
of :meth:`PerplexityScorer.identity`, and when sentencepiece loads its vocabulary is checked
against it (:func:`sampling.normalize.vocabulary_conformance`): a mismatch is logged with the
numbers, or refused with ``strict=True``.

Speed (see ``perf/bench_scoring.py``): a batch of documents goes through one stage at a
time: one normalization per document (NFD plus a replace of only the characters present), one
``sp.encode_as_ids`` (piece strings then come from a table: no Python string per piece) and one
``model.score`` per KenLM line, so per-document Python work is a handful of C calls. KenLM and
sentencepiece load lazily on first use, and ``__getstate__`` drops them, so a scorer pickles cheaply
into datatrove worker processes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from bertin_bench import paths
from bertin_bench.provenance import hash_file
from sampling.normalize import (
    CC_NET, EDUGP, NORMALIZATION_FILE, PRESETS, RAW, Conformance, Normalization, preset, vocabulary_conformance,
)

log = logging.getLogger(__name__)

MODES = ("ccnet", "lines", "raw")
NORMALIZATIONS = ("auto", *PRESETS)  # the --normalization choices
# What makes two scorers' perplexities comparable (boundaries, scored shards): the one list.
IDENTITY_KEYS = ("lm_hash", "sp_hash", "mode", "normalization")
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


def _pieces_never_hold_whitespace(sp, normalize) -> bool:
    """Whether every whitespace character that survives ``normalize`` is turned into a piece
    boundary by this sentencepiece model (its normalizer maps it to a space). Then
    ``len(pieces) == len(" ".join(pieces).split())`` for every text, and no piece holds a newline."""
    # Unicode has no whitespace above U+3000 (tested); a regex scan beats a str.isspace() loop 4x.
    spaces = re.findall(r"\s", "".join(map(chr, range(_LAST_SPACE + 1))))
    return not any(ch.isspace() for ws in spaces
                   for piece in sp.encode_as_pieces(normalize(f"a{ws}b")) for ch in piece)


def default_normalization(model_dir: str | None, hub: tuple[str, str] | None, kenlm_path: str | None,
                          mode: str) -> tuple[Normalization, str, bool]:
    """The normalization a model's source implies: (normalization, why, binding).

    ``binding`` when the model directory records it (``normalization.json``, written by
    ``bench lm train``): scoring such a model with another normalization is refused.
    """
    if mode == "raw":
        return RAW, "raw mode scores unnormalized text", True
    if hub is not None:
        # edugp/kenlm (and the copies of its layout) were trained keeping case and accents; its
        # model card says to keep KenlmModel's defaults, which are the edugp preset.
        return EDUGP, f"Hub model hf://{'/'.join(hub)}: edugp/kenlm's KenlmModel defaults", False
    where = Path(model_dir) if model_dir is not None else Path(kenlm_path).parent
    recorded = where / NORMALIZATION_FILE
    if recorded.is_file():
        return Normalization.load(recorded), f"recorded in {recorded}", True
    # A downloaded copy of the edugp models: its own name, or the Hub cache path it sits in
    # (.../models--edugp--kenlm/snapshots/<rev>/wikipedia).
    if any("edugp" in part.lower() for part in where.resolve().parts):
        return EDUGP, f"{where}: an edugp/kenlm model (by its path)", False
    if (where / "lm_meta.json").is_file():
        return CC_NET, f"{where}/lm_meta.json: `bench lm train` before normalization.json (always cc_net)", True
    return CC_NET, f"{where}: a local CCNet-style model (cc_net, as CCNet's own LMs and the shared kenlm_es)", False


def identity_diffs(stored: dict, current: dict) -> list[str]:
    """How two scorer identities differ in what makes perplexities comparable (empty: the same).

    An identity recorded before the normalization was (no ``normalization`` key) is read as what
    that version did, exactly: ``cc_net`` in ``ccnet``/``lines`` mode, nothing in ``raw`` mode.
    """
    stored, current = upgrade_identity(stored), upgrade_identity(current)
    return [f"{k}: {stored.get(k)!r} vs {current.get(k)!r}" for k in IDENTITY_KEYS if stored.get(k) != current.get(k)]


def upgrade_identity(identity: dict) -> dict:
    """``identity`` with the normalization that a file written before it was recorded implies."""
    if "normalization" in identity or "mode" not in identity:
        return identity
    implied = RAW if identity["mode"] == "raw" else CC_NET
    return {**identity, "normalization": implied.to_dict()}


_WARNED: set = set()  # (sentencepiece path, normalization) already warned about in this process

class PerplexityScorer:
    """KenLM + sentencepiece document perplexity, lazily loaded and picklable.

    ``model_dir``: a local directory holding ``{lang}.arpa.bin`` and ``{lang}.sp.model``; or
    ``hf://OWNER/REPO/SUBDIR`` (e.g. ``hf://edugp/kenlm/wikipedia``) for the Hub; or None for
    ``kenlm_es`` in the data directory, falling back to ``hf://edugp/kenlm/wikipedia`` when no data
    directory exists. ``kenlm_path`` / ``sp_path`` override single files.

    ``normalization``: a preset name (``cc_net``, ``edugp``, ``raw``), a ``Normalization``, or
    None/``auto`` for the one the model's source implies (:func:`default_normalization`).
    ``strict``: refuse, rather than log, a sentencepiece vocabulary that does not fit the
    normalization (checked once, when sentencepiece first loads).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        kenlm_path: str | os.PathLike | None = None,
        sp_path: str | os.PathLike | None = None,
        mode: str = "lines",
        lang: str = DEFAULT_LANG,
        normalization: str | Normalization | None = None,
        strict: bool = False,
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
        self.normalization, self.normalization_source = self._choose_normalization(
            model_dir, kenlm_path, normalization)
        self.strict = strict
        self._normalizer = None  # built on first use (its table would bloat every pickle)
        self.conformance: Conformance | None = None  # set when sentencepiece first loads
        self._model = None
        self._sp = None
        self._pieces_are_words = False  # these three are set when sentencepiece loads
        self._piece_table: list[str] = []
        self._unk_id = -1
        self._identity: dict | None = None

    def _choose_normalization(self, model_dir, kenlm_path, given) -> tuple[Normalization, str]:
        implied, why, binding = default_normalization(
            None if self.hub else (str(model_dir) if model_dir is not None else None), self.hub,
            self.kenlm_path if not self.hub else None, self.mode)
        if given is None or given == "auto":
            return implied, why
        norm = preset(given)
        if norm != implied and binding:
            what = "raw mode" if self.mode == "raw" else f"this LM ({why})"
            raise ValueError(f"normalization {norm.name} does not fit {what}: it needs {implied.name}; "
                             "leave --normalization unset")
        return norm, "given" if norm != implied else f"given; also {why}"

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
            self._pieces_are_words = _pieces_never_hold_whitespace(sp, self.normalizer.normalize)
            self._piece_table = sp.id_to_piece(list(range(sp.get_piece_size())))  # one C++ call
            self._unk_id = sp.unk_id()
            if self.conformance is None:  # once: pickled into workers with the result
                self._check_vocabulary(sp)
            self._sp = sp
        return self._sp

    @property
    def normalizer(self):
        if self._normalizer is None:
            self._normalizer = self.normalization.normalizer()
        return self._normalizer

    def _check_vocabulary(self, sp) -> None:
        """Compare the sentencepiece vocabulary with the normalization; log or (strict) refuse."""
        # Control, unknown and byte pieces are spelled <...>: ask sentencepiece about those only.
        pieces = [p for i, p in enumerate(self._piece_table)
                  if not (p[:1] == "<" and (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)))]
        self.conformance = vocabulary_conformance(pieces, self.normalization)
        if self.conformance.ok:
            return
        message = (f"{self.sp_path}: the sentencepiece vocabulary does not fit normalization "
                   f"{self.normalization.describe()} ({self.normalization_source}): "
                   + "; ".join(self.conformance.problems)
                   + ". Perplexities of mis-normalized text are not the model's; choose --normalization "
                     "to match how the LM was trained")
        if self.strict:
            raise ValueError(message)
        # once per process and model: a study builds a scorer per stage, and the same warning five
        # times hides the rest of the output
        seen = (self.sp_path, self.normalization)
        if seen not in _WARNED:
            _WARNED.add(seen)
            log.warning("%s", message)

    def check_normalization(self) -> Conformance:
        """Load sentencepiece (if this mode uses it) and return the vocabulary check; under
        ``strict`` a mismatch raises. Callers run it once before any work."""
        if self.mode != "raw":
            self.sp
        return self.conformance

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_model"] = None  # C objects do not pickle; each process reloads on first use
        state["_sp"] = None
        state["_piece_table"] = []  # rebuilt with sentencepiece (50k strings would bloat every pickle)
        state["_normalizer"] = None  # shared per process, rebuilt from the (small) Normalization
        return state

    def identity(self) -> dict:
        """What makes two scorers' numbers comparable: LM and sentencepiece content hashes, mode,
        normalization (compare two with :func:`identity_diffs`)."""
        if self._identity is None:
            kenlm_file = self._resolve("kenlm")
            sp_file = self._resolve("sp") if self.mode != "raw" else None
            self._identity = {
                "lm": Path(kenlm_file).name,
                "lm_hash": quick_file_hash(kenlm_file),
                "sp": Path(sp_file).name if sp_file else None,
                "sp_hash": quick_file_hash(sp_file) if sp_file else None,
                "mode": self.mode,
                "normalization": self.normalization.to_dict(),
            }
        return dict(self._identity)

    def describe(self) -> dict:
        """identity() plus where the files were found (for stats/provenance, not for comparison)."""
        return {**self.identity(), "lm_path": self.kenlm_path, "sp_path": self.sp_path,
                "normalization_source": self.normalization_source,
                "vocabulary": self.conformance.to_dict() if self.conformance else None}

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
        lines, counts = self._pieces(list(map(self.normalizer.normalize, texts)))
        if not self._pieces_are_words:
            # A piece may hold whitespace, so a newline that survived normalization may survive
            # into the pieces: score each "\n" line as edugp does.
            return [round(self._edugp_lines(line), 1) for line in lines]
        # No piece holds whitespace: each tokenized document is one KenLM line.
        return [round(_pp(s, n + 1), 1) for s, n in zip(map(self.model.score, lines), counts)]

    def _edugp_lines(self, tokenized: str) -> float:
        log_sum, length = 0.0, 0
        for line in tokenized.split("\n"):
            log_sum += self.model.score(line)
            length += len(line.split()) + 1
        return _pp(log_sum, length)

    def _lines(self, texts: Sequence[str]) -> list[float]:
        per_doc = list(map(self.normalizer.normalize_lines, texts))
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
        return f"PerplexityScorer({where!r}, mode={self.mode!r}, normalization={self.normalization.name!r})"
