"""Text normalization before sentencepiece and KenLM: explicit, recorded, fast.

A KenLM/sentencepiece model only gives meaningful perplexities on text normalized the way its
training text was. CCNet (``cc_net/text_normalizer.py``) and edugp's ``KenlmModel`` normalize with
regexes and per-character Python loops, each step switchable:

    strip -> lower? -> strip accents? (NFD, drop category Mn) -> digits (any Nd) to "0"?
          -> unicode punctuation: map (1), remove (2) or keep (0) -> drop chars 0-31 and 127-159?

:class:`Normalization` is that set of switches, one frozen value recorded in the scorer's identity
(so boundaries and scored shards made with one normalization are refused with another), with three
presets: ``cc_net`` (CCNet's defaults: everything on), ``edugp`` (edugp's ``KenlmModel`` defaults:
case and accents kept, digits and punctuation normalized) and ``raw`` (nothing: BERTIN's run).

After the optional lower/NFD step every remaining step is a per-character substitution, and no
substitution produces a character that a later step would touch again (the punctuation map outputs
ASCII punctuation and spaces only). So the steps fold into ONE substitution table, built once per
normalization (:meth:`Normalization.normalizer`). Precedence inside the table follows CCNet's
order: a decimal digit is replaced by "0" before the punctuation map sees it (CCNet's map contains
the fullwidth digit "１", which therefore never maps to '"').

How the table is applied is a measured choice (``perf/bench_scoring.py``): ``str.translate``
with a dict looks up every character in Python objects (~80 us for a 1,000-character Spanish
document, whose combining accents make it non-ASCII), while a typical document contains only ~7
distinct characters that the table changes. So ``normalize`` collects the candidates (every table
key is a digit, a control character or non-ASCII: one C regex scan skips the printable ASCII that
makes up ~95% of the text), intersects them with the table's keys and applies one ``str.replace``
per character found: same result (the substitutions are independent, see above), 2-3x faster.

``tests/sampling/test_normalize.py`` checks bit-equality with a transcription of CCNet's code, and
``tests/sampling/test_normalization_presets.py`` each preset against the code it reproduces.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import unicodedata
from pathlib import Path

from bertin_bench.io import read_json, write_json_atomic

# CCNet's UNICODE_PUNCT, verbatim (cc_net/text_normalizer.py).
UNICODE_PUNCT = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"',
    "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!",
    "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'",
    "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%", "►": "-",
}

NON_PRINTING = [*range(0, 32), *range(127, 160)]


def _category_code_points() -> tuple[list[int], list[int]]:
    """Every code point of category Mn (accents, dropped) and Nd (decimal digits, -> "0")."""
    mn, nd = [], []
    for cp in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        if cat == "Mn":
            mn.append(cp)
        elif cat == "Nd":
            nd.append(cp)
    return mn, nd


def _cached_category_code_points() -> tuple[list[int], list[int]]:
    """``_category_code_points()``, kept on disk per Unicode version: the scan of 1.1 M code points
    costs ~0.13 s of every command's ~0.76 s start-up. The file is only a cache:
    any problem reading or writing it falls back to the scan."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bertin-bench" / (
        f"unicode-mn-nd-{unicodedata.unidata_version}.json")
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data.get("unidata_version") == unicodedata.unidata_version:
            return data["Mn"], data["Nd"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    mn, nd = _category_code_points()
    try:
        write_json_atomic(cache, {"unidata_version": unicodedata.unidata_version, "Mn": mn, "Nd": nd})
    except OSError:
        pass  # read-only home: scan every time
    return mn, nd


PUNCT_MODES = {0: "keep", 1: "map", 2: "remove"}
NORMALIZATION_FILE = "normalization.json"  # next to a model: the normalization it was trained with
FILE_FORMAT = "bertin-bench/normalization/v1"


@dataclasses.dataclass(frozen=True)
class Normalization:
    """What is done to a text before sentencepiece, in CCNet's order (see the module doc).

    ``punct``: 1 maps CCNet's unicode punctuation to ASCII, 2 removes it, 0 keeps it. Whether a
    document is normalized whole or line by line is the scoring mode's business, not this value's.
    """

    lowercase: bool = True
    strip_accents: bool = True
    digits: bool = True  # every decimal digit (category Nd) -> "0"
    punct: int = 1
    non_printing: bool = True  # drop chars 0-31 and 127-159 (newlines and tabs included)

    def __post_init__(self) -> None:
        for name in ("lowercase", "strip_accents", "digits", "non_printing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"normalization {name} must be true or false, got {getattr(self, name)!r}")
        if self.punct not in PUNCT_MODES or isinstance(self.punct, bool):
            raise ValueError(f"normalization punct must be 0 (keep), 1 (map) or 2 (remove), got {self.punct!r}")

    @property
    def name(self) -> str:
        """The preset these settings equal, else ``custom``."""
        return next((name for name, preset in PRESETS.items() if preset == self), "custom")

    @property
    def is_identity(self) -> bool:
        return self == PRESETS["raw"]

    def to_dict(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, where: str = "normalization") -> "Normalization":
        """The inverse of :meth:`to_dict` (``name`` is derived, so it is checked, not trusted)."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a normalization must be a JSON object, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        settings = {k: v for k, v in data.items() if k in fields}
        unknown = set(data) - fields - {"name", "format"}
        if unknown:
            raise ValueError(f"{where}: unknown normalization fields {sorted(unknown)}")
        if not settings and data.get("name") in PRESETS:
            return PRESETS[data["name"]]
        missing = fields - set(settings)
        if missing:
            raise ValueError(f"{where}: normalization lacks {sorted(missing)}")
        norm = cls(**settings)
        if data.get("name") not in (None, norm.name):
            raise ValueError(f"{where}: normalization named {data['name']!r} holds the settings of {norm.name!r}")
        return norm

    def describe(self) -> str:
        if self.is_identity:
            return f"{self.name} (none)"
        kept = [what for what, on in (("lowercase", self.lowercase), ("strip accents", self.strip_accents),
                                      ("digits->0", self.digits), ("drop non-printing", self.non_printing)) if on]
        if self.punct:
            kept.append(f"punctuation {PUNCT_MODES[self.punct]}")
        return f"{self.name} ({', '.join(kept)})"

    def save(self, model_dir: str | os.PathLike) -> Path:
        """``model_dir/normalization.json``: the scorer reads it and refuses to score with another."""
        return write_json_atomic(Path(model_dir) / NORMALIZATION_FILE, {"format": FILE_FORMAT, **self.to_dict()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalization":
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise ValueError(f"{path}: not a normalization file (expected format {FILE_FORMAT!r})")
        return cls.from_dict(data, where=str(path))

    def normalizer(self) -> "Normalizer":
        """The fast normalizer of these settings, built once per process and shared."""
        built = _NORMALIZERS.get(self)
        if built is None:
            built = _NORMALIZERS[self] = Normalizer(self)
        return built


PRESETS: dict[str, Normalization] = {
    # CCNet's text_normalizer.normalize defaults; how CCNet's own LMs and `bench lm train` models were made.
    "cc_net": Normalization(),
    # edugp/kenlm KenlmModel defaults (lower_case=False, remove_accents=False, normalize_numbers=True,
    # punctuation=1): the hf://edugp/kenlm models were trained keeping case and accents.
    "edugp": Normalization(lowercase=False, strip_accents=False),
    # No normalization at all: BERTIN scored raw mC4 text (and `raw` mode uses no sentencepiece).
    "raw": Normalization(lowercase=False, strip_accents=False, digits=False, punct=0, non_printing=False),
}
CC_NET, EDUGP, RAW = PRESETS["cc_net"], PRESETS["edugp"], PRESETS["raw"]

_NORMALIZERS: dict[Normalization, "Normalizer"] = {}

# Printable ASCII except digits is never in a table: only the other characters can be active.
_CANDIDATES = re.compile(r"[^ -/:-~]")


def _build_table(norm: Normalization) -> dict[int, str | None]:
    mn, nd = _cached_category_code_points() if norm.strip_accents or norm.digits else ([], [])
    table: dict[int, str | None] = {cp: None for cp in mn} if norm.strip_accents else {}
    if norm.digits:
        table.update((cp, "0") for cp in nd)
    if norm.punct:
        for char, repl in UNICODE_PUNCT.items():
            table.setdefault(ord(char), repl if norm.punct == 1 else None)  # digits keep precedence (CCNet order)
    if norm.non_printing:
        for cp in NON_PRINTING:
            table[cp] = None
    return table


class Normalizer:
    """One :class:`Normalization` made fast: its substitution table, built once."""

    def __init__(self, norm: Normalization):
        self.settings = norm
        self._lower = norm.lowercase
        self._nfd = norm.strip_accents  # NFD only belongs to accent stripping (CCNet's strip_accents)
        self._identity = norm.is_identity
        table = _build_table(norm)
        self._replacement = {chr(cp): repl or "" for cp, repl in table.items()}  # char -> substitute ("" deletes)
        self._active = frozenset(self._replacement)  # every character this normalization changes
        assert not any(" " <= c <= "~" and not c.isdigit() for c in self._active)

    def normalize(self, text: str) -> str:
        """The whole text normalized at once. With ``non_printing`` on, newlines (chr 10) are
        removed, exactly as in CCNet/edugp when a whole document is normalized at once."""
        if self._identity:
            return text  # edugp's get_perplexity(normalize_cc_net=False): not even stripped
        text = text.strip()
        if not text:
            return text
        if self._lower:
            text = text.lower()
        if self._nfd:
            text = unicodedata.normalize("NFD", text)
        replacement = self._replacement
        for char in self._active.intersection(_CANDIDATES.findall(text)):  # any order: substitutions are independent
            text = text.replace(char, replacement[char])
        return text

    def normalize_lines(self, text: str) -> list[str]:
        """Normalize each line separately (``lines`` scoring mode); empty lines are dropped."""
        out = []
        for line in text.split("\n"):
            norm = self.normalize(line)
            if norm.strip():
                out.append(norm)
        return out


def preset(name: str | Normalization) -> Normalization:
    """A preset by name (or a Normalization, returned as is); an unknown name is a clear error."""
    if isinstance(name, Normalization):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown normalization {name!r}; choose one of {', '.join(PRESETS)}") from None


# -- does a sentencepiece vocabulary fit a normalization? -----------------------------------------

# A vocabulary counts as cased / accented when more than this fraction of its letter-bearing pieces
# hold an uppercase / accented letter. Not zero: sentencepiece's own NFKC can turn a character that
# lowercasing left alone into a capital (U+1D2C MODIFIER LETTER CAPITAL A -> "A"), so a vocabulary
# trained on lowercased text may hold a stray capital piece (the shared model has 1 of 16,000).
STRAY_FRACTION = 0.005


@dataclasses.dataclass(frozen=True)
class Conformance:
    """What a sentencepiece vocabulary says about the text it was trained on, against a normalization."""

    pieces: int  # pieces holding a letter (control, unknown and byte pieces excluded)
    uppercase: int  # of those, pieces that lowercasing would change
    accented: int  # pieces that accent stripping would change
    examples: dict  # a few pieces of each kind
    problems: tuple[str, ...]  # empty when the vocabulary fits the normalization

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"pieces": self.pieces, "uppercase": self.uppercase, "accented": self.accented,
                "problems": list(self.problems)}


_LETTER = re.compile(r"[^\W\d_]")  # a letter: a word character that is not a digit or _


def _strip_marks(piece: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", piece) if unicodedata.category(c) != "Mn")


def vocabulary_conformance(pieces: list[str], norm: Normalization) -> Conformance:
    """Compare a sentencepiece vocabulary (its letter-bearing pieces) with ``norm``.

    A piece with a capital letter can never be produced from lowercased text, nor one with an
    accent from accent-stripped text: such pieces in the vocabulary mean the model was trained on
    text that ``norm`` does not produce. The reverse for case: a vocabulary without capitals was
    trained on lowercased text, so text that keeps its case hits unknown or fragmented pieces. (The
    reverse for accents is not checked: a vocabulary of a language written without accents, or of
    accent-stripped text, looks the same.)
    """
    letters = list(filter(_LETTER.search, pieces))
    upper = [p for p in letters if p != p.lower()]
    # sentencepiece's NFKC composes pieces, so an accented letter is one that NFD changes (a C test
    # that skips the Python loop of _strip_marks for almost every piece).
    accented = [p for p in letters if not unicodedata.is_normalized("NFD", p) and p != _strip_marks(p)]
    n = max(len(letters), 1)
    cased, has_accents = len(upper) / n > STRAY_FRACTION, len(accented) / n > STRAY_FRACTION
    problems = []
    share = lambda k: f"{k:,} of {len(letters):,} letter pieces ({k / n:.1%})"  # noqa: E731
    if norm.lowercase and cased:
        problems.append(f"{share(len(upper))} hold uppercase letters (e.g. {', '.join(upper[:5])}), "
                        f"but normalization {norm.name} lowercases: the model was trained on cased text")
    if not norm.lowercase and letters and not cased:
        problems.append(f"only {share(len(upper))} hold uppercase letters: the model was trained on lowercased "
                        f"text, but normalization {norm.name} keeps case")
    if norm.strip_accents and has_accents:
        problems.append(f"{share(len(accented))} hold accented letters (e.g. {', '.join(accented[:5])}), "
                        f"but normalization {norm.name} strips accents: the model was trained on accented text")
    return Conformance(pieces=len(letters), uppercase=len(upper), accented=len(accented),
                       examples={"uppercase": upper[:5], "accented": accented[:5]}, problems=tuple(problems))


# -- CCNet's defaults as plain functions ----------------------------------------------------------

# Built once at import (from the on-disk cache, or a ~0.13 s scan); forked workers inherit it.
_CC_NET = CC_NET.normalizer()


def normalize(text: str) -> str:
    """CCNet ``normalize(line, accent=True, case=True, numbers=True, punct=1)`` of a whole text
    (the ``cc_net`` preset). Newlines are non-printing (chr 10) and are removed."""
    return _CC_NET.normalize(text)


def normalize_lines(text: str) -> list[str]:
    """``normalize`` of each line separately (``lines`` scoring mode, ``cc_net``); empty lines dropped."""
    return _CC_NET.normalize_lines(text)
