"""PerplexityScorer: ccnet mode equals edugp's KenlmModel; lines/raw follow their definitions;
lazy loading, pickling, identity, clear errors."""

from __future__ import annotations

import json
import math
import pickle
import shutil
import sys

import pytest

from sampling.normalize import normalize_lines
from sampling.scorer import _LAST_SPACE, PerplexityScorer
from tests.sampling import ccnet_reference as ref
from tests.sampling.util import read_lines


@pytest.fixture(scope="module")
def texts(web_sample):
    docs = [json.loads(line)["text"] for line in read_lines(web_sample, 400)]
    # odd documents that stress normalization and whitespace handling
    return docs + ["１２ — «ÉXITO»\n\nsegunda línea\x07", "a", "x" * 3000, "  \n\n ", "tab\there\u3000ideographic space"]


def test_ccnet_mode_is_bit_compatible_with_edugp(kenlm_dir, ccnet_scorer, texts):
    edugp = ref.KenlmModel(str(kenlm_dir / "es.arpa.bin"), str(kenlm_dir / "es.sp.model"))
    expected = [edugp.get_perplexity(t) for t in texts]
    assert ccnet_scorer.perplexities(texts) == expected  # exact float equality, batch path
    assert [ccnet_scorer.perplexity(t) for t in texts[:20]] == expected[:20]  # single-document path
    assert all(round(p, 1) == p for p in expected)
    # the word count shortcut (len(pieces)) is only taken when provably equal to edugp's split()
    assert ccnet_scorer._pieces_are_words
    slow = PerplexityScorer(kenlm_dir, mode="ccnet")
    slow.sp
    slow._pieces_are_words = False
    assert slow.perplexities(texts) == expected


def test_whitespace_scan_stops_at_the_last_unicode_space():
    # _pieces_never_hold_whitespace scans code points up to _LAST_SPACE only
    spaces = [cp for cp in range(sys.maxunicode + 1) if chr(cp).isspace()]
    assert max(spaces) == _LAST_SPACE


def test_unknown_pieces_are_spelled_as_their_surface(ccnet_scorer, kenlm_dir):
    """The id-table fast path must not turn a piece unknown to sentencepiece into "<unk>"."""
    edugp = ref.KenlmModel(str(kenlm_dir / "es.arpa.bin"), str(kenlm_dir / "es.sp.model"))
    texts = ["hola 😀 mundo", "中文字符 y español", "ﷺ x", "sin nada raro"]
    sp = ccnet_scorer.sp
    assert [sp.unk_id() in sp.encode_as_ids(t) for t in texts] == [True, True, True, False]
    assert ccnet_scorer.perplexities(texts) == [edugp.get_perplexity(t) for t in texts]
    lines, counts = ccnet_scorer._pieces(texts)
    assert lines == [" ".join(sp.encode_as_pieces(t)) for t in texts] and "<unk>" not in "".join(lines)
    assert counts == [len(line.split()) for line in lines]


def test_lines_mode_scores_each_normalized_line(lines_scorer, texts):
    model, sp = lines_scorer.model, lines_scorer.sp
    got = lines_scorer.perplexities(texts)
    for text, pp in zip(texts, got):
        lines = [" ".join(sp.encode_as_pieces(line)) for line in normalize_lines(text)]
        if not lines:
            assert math.isnan(pp)
            continue
        log_sum = sum(model.score(line) for line in lines)
        length = sum(len(line.split()) + 1 for line in lines)
        assert pp == 10.0 ** (-log_sum / length)
    # newlines matter in lines mode, not in ccnet mode
    two = "el gobierno aprobó la ley\nen el congreso"
    assert lines_scorer.perplexity(two) != lines_scorer.perplexity(two.replace("\n", " "))


def test_raw_mode_is_whitespace_words_without_normalization(kenlm_dir):
    scorer = PerplexityScorer(kenlm_dir, mode="raw")
    text = "El Gobierno aprobó\nla ley 2021"
    lines = text.split("\n")
    log_sum = sum(scorer.model.score(line) for line in lines)
    assert scorer.perplexity(text) == 10.0 ** (-log_sum / (3 + 1 + 3 + 1))
    assert scorer.perplexity(text) != scorer.perplexity(text.lower())  # no normalization


def test_lazy_loading_and_pickling(kenlm_dir, texts):
    scorer = PerplexityScorer(kenlm_dir, mode="ccnet")
    assert scorer._model is None and scorer._sp is None  # nothing loaded at construction
    before = scorer.perplexities(texts[:5])
    assert scorer._model is not None
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone._model is None and clone._sp is None  # models dropped, reloaded on first use
    assert clone.perplexities(texts[:5]) == before
    assert len(pickle.dumps(scorer)) < 10_000


def test_identity_hashes_files_and_mode(kenlm_dir, tmp_path):
    a = PerplexityScorer(kenlm_dir, mode="ccnet").identity()
    assert a["mode"] == "ccnet" and a["lm_hash"].startswith("sha256:") and a["sp_hash"].startswith("sha256:")
    assert PerplexityScorer(kenlm_dir, mode="lines").identity() == {**a, "mode": "lines"}
    # same content elsewhere -> same identity; other content -> other identity
    copy = tmp_path / "copy"
    shutil.copytree(kenlm_dir, copy)
    assert PerplexityScorer(copy, mode="ccnet").identity() == a
    with open(copy / "es.arpa.bin", "ab") as f:
        f.write(b"\0")
    assert PerplexityScorer(copy, mode="ccnet").identity()["lm_hash"] != a["lm_hash"]


def test_missing_lm_file_is_a_clear_error(kenlm_dir, tmp_path):
    (tmp_path / "es.sp.model").write_bytes((kenlm_dir / "es.sp.model").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"es\.arpa\.bin not found"):
        PerplexityScorer(tmp_path)
    with pytest.raises(ValueError, match="unknown scoring mode"):
        PerplexityScorer(kenlm_dir, mode="fast")
    with pytest.raises(ValueError, match="hf://OWNER/REPO"):
        PerplexityScorer("hf://edugp")


def test_hub_path_is_lazy(monkeypatch):
    """hf:// model dirs resolve files only when first needed (nothing is downloaded here)."""
    scorer = PerplexityScorer("hf://edugp/kenlm/wikipedia", mode="ccnet")
    assert scorer.hub == ("edugp/kenlm", "wikipedia") and scorer.kenlm_path is None
    calls = []

    def fake_download(repo_id, filename):
        calls.append((repo_id, filename))
        raise RuntimeError("offline")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.raises(RuntimeError, match="offline"):
        scorer.perplexity("hola")
    assert calls == [("edugp/kenlm", "wikipedia/es.sp.model")]  # the first file needed, nothing more
