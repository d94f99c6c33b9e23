"""CCNet text normalization, fast.

CCNet (``cc_net/text_normalizer.py``) and the edugp ``KenlmModel`` that BERTIN-era tools used
normalize with regexes and per-character Python loops. The steps are:

    strip -> lower -> strip accents (NFD, drop category Mn) -> digits (any Nd) to "0"
          -> unicode punctuation map -> drop chars 0-31 and 127-159

After the NFD step every remaining step is a per-character substitution, and no substitution
produces a character that a later step would touch again (the punctuation map outputs ASCII
punctuation and spaces only). So the four steps fold into ONE substitution table, applied after
``unicodedata.normalize("NFD")``. Precedence inside the table follows CCNet's order: a decimal digit
is replaced by "0" before the punctuation map sees it (CCNet's map contains the fullwidth digit
"１", which therefore never maps to '"').

How the table is applied is a measured choice (``benchmarks/bench_scoring.py``): ``str.translate``
with a dict looks up every character in Python objects (~80 us for a 1,000-character Spanish
document, whose combining accents make it non-ASCII), while a typical document contains only ~7
distinct characters that the table changes. So ``normalize`` collects the candidates (every table
key is a digit, a control character or non-ASCII: one C regex scan skips the printable ASCII that
makes up ~95% of the text), intersects them with the table's keys and applies one ``str.replace``
per character found: same result (the substitutions are independent, see above), 2-3x faster.

``tests/sampling/test_normalize.py`` checks bit-equality with a transcription of CCNet's code.
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from pathlib import Path

from bertin_bench.io import write_json_atomic

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


def _build_table() -> dict[int, str | None]:
    mn, nd = _cached_category_code_points()
    table: dict[int, str | None] = {cp: None for cp in mn}
    table.update((cp, "0") for cp in nd)
    for char, repl in UNICODE_PUNCT.items():
        table.setdefault(ord(char), repl)  # digits keep precedence (CCNet order)
    for cp in NON_PRINTING:
        table[cp] = None
    return table


# Built once at import (from the on-disk cache, or a ~0.13 s scan); forked workers inherit it.
_TABLE = _build_table()
_REPLACEMENT = {chr(cp): repl or "" for cp, repl in _TABLE.items()}  # char -> its substitute ("" deletes)
_ACTIVE = frozenset(_REPLACEMENT)  # every character normalization changes
# Printable ASCII except digits is never in the table: only the other characters can be active.
_CANDIDATES = re.compile(r"[^ -/:-~]")
assert not any(" " <= c <= "~" and not c.isdigit() for c in _ACTIVE)


def normalize(text: str) -> str:
    """CCNet ``normalize(line, accent=True, case=True, numbers=True, punct=1)`` of a whole text.

    Newlines are non-printing (chr 10) and are removed, exactly as in CCNet/edugp when a whole
    document is normalized at once.
    """
    text = text.strip()
    if not text:
        return text
    text = unicodedata.normalize("NFD", text.lower())
    for char in _ACTIVE.intersection(_CANDIDATES.findall(text)):  # any order: substitutions are independent
        text = text.replace(char, _REPLACEMENT[char])
    return text


def normalize_lines(text: str) -> list[str]:
    """Normalize each line separately (``lines`` scoring mode); empty lines are dropped."""
    out = []
    for line in text.split("\n"):
        norm = normalize(line)
        if norm:
            out.append(norm)
    return out
