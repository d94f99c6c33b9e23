"""The straightforward reference: CCNet's normalizer and edugp's KenlmModel.get_perplexity, transcribed.

Sources: facebookresearch/cc_net ``cc_net/text_normalizer.py`` and the edugp ``KenlmModel``
(``edugp/kenlm`` model card / ``model.py``), logic kept verbatim: regexes and per-character Python
loops, one document at a time. ``tests/sampling/test_normalize.py`` and ``test_scorer.py`` check the
fast implementation against it, and ``perf/bench_scoring.py`` times it as the baseline.
"""

from __future__ import annotations

import re
import unicodedata

UNICODE_PUNCT = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"',
    "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!",
    "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'",
    "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%", "►": "-",
}
UNICODE_PUNCT_RE = re.compile(f"[{''.join(UNICODE_PUNCT.keys())}]")
DIGIT_RE = re.compile(r"\d")
NON_PRINTING_CHARS_RE = re.compile(f"[{''.join(map(chr, list(range(0, 32)) + list(range(127, 160))))}]")


def strip_accents(line: str) -> str:
    """Strips accents from a piece of text."""
    nfd = unicodedata.normalize("NFD", line)
    output = [c for c in nfd if unicodedata.category(c) != "Mn"]
    if len(output) == line:  # (sic) CCNet compares a list length with a str: never true
        return line
    return "".join(output)


def replace_unicode_punct(text: str) -> str:
    return "".join(UNICODE_PUNCT.get(c, c) for c in text)


def remove_non_printing_char(text: str) -> str:
    return NON_PRINTING_CHARS_RE.sub("", text)


def normalize(line: str, accent=True, case=True, numbers=True, punct=1) -> str:
    line = line.strip()
    if not line:
        return line
    if case:
        line = line.lower()
    if accent:
        line = strip_accents(line)
    if numbers:
        line = DIGIT_RE.sub("0", line)
    if punct == 1:
        line = replace_unicode_punct(line)
    line = remove_non_printing_char(line)
    return line


class KenlmModel:
    """edugp's KenlmModel with CCNet's normalization (``lower_case=True, remove_accents=True``, not
    edugp's defaults: see ``edugp_reference.py``): normalize, sentencepiece, per-line score, round."""

    def __init__(self, kenlm_path: str, sp_path: str):
        import kenlm
        import sentencepiece

        self.model = kenlm.Model(kenlm_path)
        self.sp = sentencepiece.SentencePieceProcessor()
        self.sp.load(sp_path)

    @staticmethod
    def pp(log_score, length):
        return 10.0 ** (-log_score / length)

    def get_perplexity(self, doc: str, normalize_cc_net: bool = True) -> float:
        if normalize_cc_net:
            doc = normalize(doc)
        tokenized = " ".join(self.sp.encode_as_pieces(doc))
        doc_log_score, doc_length = 0, 0
        for line in tokenized.split("\n"):
            log_score = self.model.score(line)
            length = len(line.split()) + 1
            doc_log_score += log_score
            doc_length += length
        return round(self.pp(doc_log_score, doc_length), 1)
