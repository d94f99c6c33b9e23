"""CCNet text normalization, fast.

CCNet (``cc_net/text_normalizer.py``) and the edugp ``KenlmModel`` that BERTIN-era tools used
normalize with regexes and per-character Python loops. The steps are:

    strip -> lower -> strip accents (NFD, drop category Mn) -> digits (any Nd) to "0"
          -> unicode punctuation map -> drop chars 0-31 and 127-159

After the NFD step every remaining step is a per-character substitution, and no substitution
produces a character that a later step would touch again (the punctuation map outputs ASCII
punctuation and spaces only). So the four steps fold into ONE ``str.translate`` table, applied after
``unicodedata.normalize("NFD")`` -- both run in C. Precedence inside the table follows CCNet's
order: a decimal digit is replaced by "0" before the punctuation map sees it (CCNet's map contains
the fullwidth digit "１", which therefore never maps to '"').

``tests/sampling/test_normalize.py`` checks bit-equality with a transcription of CCNet's code.
"""

from __future__ import annotations

import sys
import unicodedata

# CCNet's UNICODE_PUNCT, verbatim (cc_net/text_normalizer.py).
UNICODE_PUNCT = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"',
    "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!",
    "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'",
    "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%", "►": "-",
}

NON_PRINTING = [*range(0, 32), *range(127, 160)]


def _build_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for cp in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        if cat == "Mn":
            table[cp] = None
        elif cat == "Nd":
            table[cp] = "0"
    for char, repl in UNICODE_PUNCT.items():
        table.setdefault(ord(char), repl)  # digits keep precedence (CCNet order)
    for cp in NON_PRINTING:
        table[cp] = None
    return table


# Built once at import (~0.2 s over the full code-point range); forked workers inherit it.
_TABLE = _build_table()


def normalize(text: str) -> str:
    """CCNet ``normalize(line, accent=True, case=True, numbers=True, punct=1)`` of a whole text.

    Newlines are non-printing (chr 10) and are removed, exactly as in CCNet/edugp when a whole
    document is normalized at once.
    """
    text = text.strip()
    if not text:
        return text
    return unicodedata.normalize("NFD", text.lower()).translate(_TABLE)


def normalize_lines(text: str) -> list[str]:
    """Normalize each line separately (``lines`` scoring mode); empty lines are dropped."""
    out = []
    for line in text.split("\n"):
        norm = normalize(line)
        if norm:
            out.append(norm)
    return out
