"""The fast CCNet normalizer (one str.translate) equals CCNet's regex/char-loop code, bit for bit."""

from __future__ import annotations

import gzip
import json

import pytest

from sampling.normalize import normalize, normalize_lines
from tests.sampling import ccnet_reference as ref

EDGE_CASES = [
    "",
    "   \n\t  ",
    "１２３ fullwidth digits",  # "１" is both a digit and in CCNet's punct map: digits win -> "000"
    "Año 2021 — «Hola», dijo… ¿qué? ",
    "combining: e\u0301 a\u0300 n\u0303 and precomposed é à ñ Ç",
    "control \x00\x01\x07\x1b chars \x7f\x80\x9f and NBSP\xa0here",
    "İstanbul ǅ ß ﬁ Ⅻ",  # lowercase that yields combining marks, titlecase digraph, ligature
    "arabic-indic ٣٤ devanagari ४२ superscript ² fraction ½",
    "tabs\tand\nnewlines\r\nare removed",
    "，。、„”“«»」「《》´∶：？！（）；–—．～’…━〈〉【】％►",
    "emoji 😀👍🏽 and ZWJ 👨‍👩‍👧",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_match_ccnet(text):
    assert normalize(text) == ref.normalize(text)


def test_specific_edge_values():
    assert normalize("１") == "0"  # not '"'
    assert normalize("a—b") == "a - b"
    assert normalize("E\u0301XITO 42") == "exito 00"
    assert normalize("a\nb") == "ab"  # whole-document normalization drops newlines (as CCNet does)
    assert normalize("  \n ") == ""
    assert normalize_lines("Uno\n\n  Dos ÁRBOL\n") == ["uno", "dos arbol"]


@pytest.mark.slow  # ~20 s CPU: the reference is a per-character Python loop over 55k documents
def test_whole_web_sample_matches_ccnet(web_sample):
    """Every one of the 55k web documents (first 2,000 characters) normalizes identically."""
    n = mismatches = 0
    first_bad = None
    with gzip.open(web_sample, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"][:2000]
            n += 1
            if normalize(text) != ref.normalize(text):
                mismatches += 1
                first_bad = first_bad or text
    assert n == 55_064
    assert mismatches == 0, f"{mismatches} documents differ, e.g. {first_bad[:200]!r}"


def test_cached_code_point_table_equals_a_fresh_scan(tmp_path, monkeypatch):
    """The on-disk cache of Mn/Nd code points (start-up speed) holds exactly what the scan finds,
    and a corrupt cache file is ignored and rewritten, never trusted."""
    from sampling import normalize as norm

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh = norm._category_code_points()
    assert norm._cached_category_code_points() == fresh  # written on this first call
    (cached,) = (tmp_path / "bertin-bench").iterdir()
    assert json.loads(cached.read_text())["Mn"] == fresh[0]
    assert norm._cached_category_code_points() == fresh  # read back
    cached.write_text('{"unidata_version": "0", "Mn": [65], "Nd": []}')  # another Unicode version
    assert norm._cached_category_code_points() == fresh
    cached.write_text("{not json")
    assert norm._cached_category_code_points() == fresh
    assert len(fresh[0]) > 1500 and 0x0301 in fresh[0] and ord("٣") in fresh[1]
