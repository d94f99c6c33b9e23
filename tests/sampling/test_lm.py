"""Reference LM training (sampling/lm.py, `bench lm train`) on real Spanish Wikipedia text.

Tests marked ``lmplz`` need KenLM's lmplz/build_binary (``bash tools/build_kenlm.sh``; the dev
install and CI build them) and skip with that advice when they are absent. Perplexity is computed
here with the plain formula, independently of the production scorer, except in the one test that
checks the scorer loads what we train.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import statistics
import subprocess
from pathlib import Path

import pytest

from sampling import lm as lm_lib
from sampling.normalize import normalize

TRAIN_LINES = 4000  # ~180k sentencepiece tokens: trains in ~10 s and already separates the text kinds
TRAIN_VOCAB = 4000
HELD_OUT_LINES = 300


def _require_binaries():
    try:
        lm_lib.find_kenlm_binary("lmplz")
        lm_lib.find_kenlm_binary("build_binary")
    except lm_lib.KenLMBinaryNotFound as err:
        pytest.skip(f"KenLM binaries unavailable: {err}")


@pytest.fixture(scope="module")
def small_lm(tmp_path_factory, wiki_text) -> tuple[Path, dict]:
    """A model trained on the first TRAIN_LINES lines of wiki_es.txt."""
    _require_binaries()
    out = tmp_path_factory.mktemp("lm") / "kenlm_small"
    meta = lm_lib.train_lm(wiki_text, out, max_lines=TRAIN_LINES, vocab_size=TRAIN_VOCAB, threads=2,
                           progress=False)
    return out, meta


@pytest.fixture(scope="module")
def text_kinds(wiki_text, data_dir) -> dict[str, list[str]]:
    """Held-out real Spanish lines, the same lines with words shuffled, English prose, random letters."""
    lines = [line for line in wiki_text.read_text(encoding="utf-8").split("\n") if line.strip()]
    held = lines[-HELD_OUT_LINES:]
    assert not set(held) & set(lines[:TRAIN_LINES]), "held-out lines must not be training lines"
    rng = random.Random(0)
    shuffled = []
    for line in held:
        words = line.split()
        rng.shuffle(words)
        shuffled.append(" ".join(words))
    # Real English: the prose of the CoNLL-2002 README, split into sentences.
    readme = data_dir / "conll2002" / "README"
    if not readme.exists():
        pytest.skip(f"{readme} (English reference prose) is missing")
    english = [s for s in re.split(r"(?<=[.:])\s+", " ".join(readme.read_text(encoding="utf-8").split()))
               if len(s.split()) >= 6]
    assert len(english) >= 15
    letters = "abcdefghijklmnopqrstuvwxyz"
    random_text = [" ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(15))
                   for _ in range(100)]
    return {"held_out": held, "shuffled": shuffled, "english": english, "random": random_text}


def _load(model_dir: Path, lang: str = "es"):
    import kenlm
    import sentencepiece as spm

    return (kenlm.Model(str(model_dir / f"{lang}.arpa.bin")),
            spm.SentencePieceProcessor(model_file=str(model_dir / f"{lang}.sp.model")))


def _line_score(model, sp, text: str) -> tuple[float, int]:
    """(sum log10 prob, words + 1) of one normalized line, as CCNet scores it."""
    pieces = " ".join(sp.encode(normalize(text), out_type=str))
    return model.score(pieces), len(pieces.split()) + 1


def _pp(model, sp, texts: list[str]) -> tuple[float, list[float]]:
    """Corpus perplexity of a set of lines, and each line's perplexity."""
    total, length, per_line = 0.0, 0, []
    for text in texts:
        log10, words = _line_score(model, sp, text)
        total += log10
        length += words
        per_line.append(10 ** (-log10 / words))
    return 10 ** (-total / length), per_line


def _doc_pp(model, sp, text: str) -> float:
    """Document perplexity over its non-empty lines (the scorer's `lines` mode)."""
    total, length = 0.0, 0
    for line in text.split("\n"):
        if normalize(line):
            log10, words = _line_score(model, sp, line)
            total += log10
            length += words
    return 10 ** (-total / length)


# -- training outputs --------------------------------------------------------------------------------


@pytest.mark.lmplz
def test_train_writes_the_two_scorer_files_and_meta(small_lm, wiki_text):
    out, meta = small_lm
    assert sorted(p.name for p in out.iterdir()) == ["es.arpa.bin", "es.sp.model", "lm_meta.json",
                                                     "normalization.json"]
    # the normalization the text got, which the scorer will follow
    recorded = json.loads((out / "normalization.json").read_text())
    assert recorded["name"] == "cc_net" and recorded["lowercase"] and recorded["strip_accents"]
    assert meta["normalization"] == {k: v for k, v in recorded.items() if k != "format"}
    assert "normalization" not in meta["options"]  # cc_net keeps the key of models trained before the option
    assert not list(out.parent.glob(f".{out.name}.train-*")), "staging directory left behind"
    model, sp = _load(out)
    assert model.order == 5
    assert sp.vocab_size() == TRAIN_VOCAB

    on_disk = json.loads((out / "lm_meta.json").read_text())
    assert on_disk == json.loads(json.dumps(meta))
    from bertin_bench.provenance import hash_file

    assert meta["input"]["sha256"] == hash_file(wiki_text)
    assert meta["input"]["lines_used"] == TRAIN_LINES
    assert meta["files"]["kenlm"]["sha256"] == hash_file(out / "es.arpa.bin")
    assert meta["files"]["sp_model"]["sha256"] == hash_file(out / "es.sp.model")
    assert meta["options"]["prune"] == [0, 0, 1] and meta["options"]["quantize"] is True
    # Five orders; pruning singletons makes the 3-gram count smaller than the 2-gram count.
    assert list(meta["ngrams"]) == ["1", "2", "3", "4", "5"]
    assert meta["ngrams"]["3"] < meta["ngrams"]["2"]
    # The LM's words are sentencepiece pieces: about the sentencepiece vocabulary, plus the rare
    # characters outside its 0.9999 coverage, which encode_as_pieces emits verbatim (as in CCNet).
    assert 0.9 * TRAIN_VOCAB <= meta["ngrams"]["1"] <= 1.05 * TRAIN_VOCAB
    # Tokens counted while encoding = what the LM saw: words of the first lines, split finer.
    words = sum(len(line.split()) for line in wiki_text.read_text(encoding="utf-8").split("\n")[:TRAIN_LINES])
    assert words < meta["input"]["tokens"] < 2 * words
    assert "lmplz -o 5" in meta["commands"]["lmplz"] and "--prune 0 0 1" in meta["commands"]["lmplz"]
    assert "-q 8 -b 8 trie" in meta["commands"]["build_binary"]
    assert meta["provenance"]["packages"]["kenlm"]


@pytest.mark.lmplz
def test_model_prefers_held_out_spanish(small_lm, text_kinds):
    model, sp = _load(small_lm[0])
    pp = {kind: _pp(model, sp, texts) for kind, texts in text_kinds.items()}
    held = pp["held_out"][0]
    assert held < 250, f"held-out Wikipedia perplexity {held:.0f} is implausibly high"
    assert pp["shuffled"][0] > 2 * held
    assert pp["english"][0] > 2 * held
    assert pp["random"][0] > 3 * held
    # Line by line, not just on average: shuffling a line's words makes it less likely.
    wins = sum(a < b for a, b in zip(pp["held_out"][1], pp["shuffled"][1]))
    assert wins >= 0.95 * len(text_kinds["held_out"])


@pytest.mark.lmplz
def test_ranks_text_like_the_shared_model(small_lm, text_kinds, kenlm_dir, web_sample):
    ours, shared = _load(small_lm[0]), _load(kenlm_dir)

    # Kinds of text: both put real Spanish first and random letters last.
    for model, sp in (ours, shared):
        pp = {kind: _pp(model, sp, texts)[0] for kind, texts in text_kinds.items()}
        ranked = sorted(pp, key=pp.get)
        assert ranked[0] == "held_out" and ranked[-1] == "random", pp

    # Web documents by source: 60 per source from the mixed web sample.
    per_source: dict[str, list[str]] = {}
    with gzip.open(web_sample, "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            docs = per_source.setdefault(doc["source"], [])
            if len(docs) < 60:
                docs.append(doc["text"])
            if len(per_source) >= 7 and all(len(d) == 60 for d in per_source.values()):
                break
    from scipy.stats import spearmanr

    medians, doc_pps = {}, {}
    for name, (model, sp) in (("ours", ours), ("shared", shared)):
        doc_pps[name] = {src: [_doc_pp(model, sp, t) for t in docs] for src, docs in sorted(per_source.items())}
        medians[name] = {src: statistics.median(v) for src, v in doc_pps[name].items()}
        ranked = sorted(medians[name], key=medians[name].get)
        # UN news is the most Wikipedia-like; tweets and lyrics the least (data README).
        assert ranked[0] == "news_un", medians[name]
        assert set(ranked[-2:]) == {"tweet", "lyrics"}, medians[name]
    sources = sorted(per_source)
    assert spearmanr([medians["ours"][s] for s in sources], [medians["shared"][s] for s in sources])[0] >= 0.85
    flat = {name: [p for s in sources for p in doc_pps[name][s]] for name in doc_pps}
    assert spearmanr(flat["ours"], flat["shared"])[0] >= 0.75


@pytest.mark.lmplz
def test_production_scorer_loads_the_trained_model(small_lm, text_kinds):
    scorer_mod = pytest.importorskip("sampling.scorer")
    model, sp = _load(small_lm[0])
    doc = "\n".join(text_kinds["held_out"][:5])
    scorer = scorer_mod.PerplexityScorer(small_lm[0], mode="lines")
    assert scorer.perplexity(doc) == pytest.approx(_doc_pp(model, sp, doc), rel=1e-9)


# -- rerun, options, errors --------------------------------------------------------------------------


@pytest.mark.lmplz
def test_rerun_skips_and_option_change_retrains(tmp_path, wiki_text):
    _require_binaries()
    out = tmp_path / "m"
    kw = dict(max_lines=400, vocab_size=800, threads=1, progress=False)
    first = lm_lib.train_lm(wiki_text, out, **kw)
    mtime = (out / "es.arpa.bin").stat().st_mtime_ns
    again = lm_lib.train_lm(wiki_text, out, **kw)
    assert again == json.loads(json.dumps(first))
    assert (out / "es.arpa.bin").stat().st_mtime_ns == mtime

    # Unquantized, unpruned, ARPA kept: a different model in the same (existing) directory.
    other = lm_lib.train_lm(wiki_text, out, quantize=False, prune="0", keep_arpa=True, **kw)
    assert other["options"]["quantize"] is False and other["options"]["prune"] == []
    assert (out / "es.arpa").is_file() and other["files"]["arpa"]["name"] == "es.arpa"
    assert other["ngrams"]["3"] > first["ngrams"]["3"]  # no singleton pruning
    assert other["files"]["kenlm"]["sha256"] != first["files"]["kenlm"]["sha256"]
    assert json.loads((out / "lm_meta.json").read_text())["options"] == other["options"]

    # A corrupted model file is noticed: the next run retrains instead of trusting the meta.
    (out / "es.arpa.bin").write_bytes(b"garbage")
    lm_lib.train_lm(wiki_text, out, quantize=False, prune="0", keep_arpa=True, **kw)
    model, _ = _load(out)
    assert model.order == 5


def test_bad_text_inputs_give_clear_errors(tmp_path, monkeypatch):
    # These checks run before any KenLM program is needed.
    monkeypatch.setenv(lm_lib.KENLM_BIN_ENV, str(tmp_path))  # no binaries here: must not matter yet
    with pytest.raises(FileNotFoundError, match="missing.txt does not exist"):
        lm_lib.train_lm(tmp_path / "missing.txt", tmp_path / "out")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        lm_lib.train_lm(empty, tmp_path / "out")
    with pytest.raises(ValueError, match="unigrams cannot be pruned"):
        lm_lib.train_lm(__file__, tmp_path / "out", prune="1 1 1")
    with pytest.raises(ValueError, match="non-decreasing"):
        lm_lib.train_lm(__file__, tmp_path / "out", prune=[0, 2, 1])


def test_parse_prune_follows_lmplz_rules():
    assert lm_lib.parse_prune("0 0 1", 5) == [0, 0, 1]
    assert lm_lib.parse_prune("0,1,2", 3) == [0, 1, 2]
    assert lm_lib.parse_prune((0, 0, 1), 2) == []  # nothing of order 3+ to prune
    assert lm_lib.parse_prune("0", 5) == [] and lm_lib.parse_prune(None, 5) == []


def test_missing_binaries_say_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv(lm_lib.KENLM_BIN_ENV, str(tmp_path))
    with pytest.raises(lm_lib.KenLMBinaryNotFound, match="does not contain an executable 'lmplz'"):
        lm_lib.find_kenlm_binary("lmplz")
    monkeypatch.delenv(lm_lib.KENLM_BIN_ENV)
    monkeypatch.setattr(lm_lib, "REPO_BIN_DIR", tmp_path / "nothing")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(lm_lib.KenLMBinaryNotFound, match="tools/build_kenlm.sh"):
        lm_lib.find_kenlm_binary("build_binary")
    text = tmp_path / "t.txt"
    text.write_text("hola mundo\n")
    with pytest.raises(lm_lib.KenLMBinaryNotFound):
        lm_lib.train_lm(text, tmp_path / "out")
    # $KENLM_BIN is honoured before the repository directory and PATH.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "lmplz").write_text("#!/bin/sh\n")
    (fake / "lmplz").chmod(0o755)
    monkeypatch.setenv(lm_lib.KENLM_BIN_ENV, str(fake))
    assert lm_lib.find_kenlm_binary("lmplz") == fake / "lmplz"


@pytest.mark.lmplz
def test_text_errors_name_file_and_line(tmp_path):
    _require_binaries()
    bad = tmp_path / "bad.txt"
    bad.write_bytes("primera línea\nsegunda\n".encode() + b"tercera \xff\xfe\n")
    with pytest.raises(ValueError, match=r"bad.txt:3: not valid UTF-8"):
        lm_lib.train_lm(bad, tmp_path / "out", progress=False)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n\u0007\n")  # a control character normalizes to nothing
    with pytest.raises(ValueError, match="blank.txt has no non-empty line"):
        lm_lib.train_lm(blank, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.lmplz
def test_tool_failures_carry_their_stderr(tmp_path, wiki_text):
    _require_binaries()
    with pytest.raises(lm_lib.LMTrainingError, match=r"(?s)lmplz failed.*banana"):
        lm_lib.train_lm(wiki_text, tmp_path / "out", max_lines=200, vocab_size=500, memory="banana",
                        progress=False)
    with pytest.raises(lm_lib.LMTrainingError, match="lower --vocab-size"):
        lm_lib.train_lm(wiki_text, tmp_path / "out", max_lines=50, vocab_size=50_000, progress=False)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.train-*")), "staging directory left behind after a failure"


# -- CLI and the build script ------------------------------------------------------------------------


def test_cli_help_has_examples():
    from click.testing import CliRunner

    from bertin_bench.cli import main

    result = CliRunner().invoke(main, ["lm", "train", "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output and "bench lm train --text" in result.output
    assert "--vocab-size" in result.output and "--keep-arpa" in result.output


@pytest.mark.lmplz
def test_cli_trains_and_reports_errors(tmp_path, wiki_text):
    _require_binaries()
    from click.testing import CliRunner

    from bertin_bench.cli import main

    out = tmp_path / "cli_lm"
    args = ["lm", "train", "--text", str(wiki_text), "--out", str(out), "--max-lines", "300",
            "--vocab-size", "700", "--threads", "1", "--quiet", "--tmp-dir", str(tmp_path / "scratch")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "es.arpa.bin" in result.output and "300 lines" in result.output
    meta = json.loads((out / "lm_meta.json").read_text())
    assert meta["options"]["vocab_size"] == 700 and meta["input"]["lines_used"] == 300
    _load(out)
    assert list((tmp_path / "scratch").iterdir()) == [], "intermediates left in --tmp-dir"

    result = CliRunner().invoke(main, ["lm", "train", "--text", str(tmp_path / "nope.txt"), "--out", str(out)])
    assert result.exit_code != 0 and "nope.txt does not exist" in result.output


def test_build_script_is_idempotent_when_binaries_work():
    """The dev install runs tools/build_kenlm.sh every time: with working binaries it must return at
    once without touching them (the full build is exercised by the install itself)."""
    script = lm_lib.REPO_BIN_DIR.parent / "build_kenlm.sh"
    assert script.is_file()
    if not (lm_lib.REPO_BIN_DIR / "lmplz").exists():
        pytest.skip(f"{lm_lib.REPO_BIN_DIR} not built (bash tools/build_kenlm.sh)")
    before = (lm_lib.REPO_BIN_DIR / "lmplz").stat().st_mtime_ns
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                            env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert "already work" in result.stderr
    assert (lm_lib.REPO_BIN_DIR / "lmplz").stat().st_mtime_ns == before


@pytest.mark.lmplz
def test_trained_normalization_is_recorded_and_followed(tmp_path, wiki_text):
    """`--normalization edugp` trains on cased, accented text; the scorer follows normalization.json."""
    _require_binaries()
    from sampling.normalize import EDUGP
    from sampling.scorer import PerplexityScorer

    out = tmp_path / "cased"
    meta = lm_lib.train_lm(wiki_text, out, max_lines=600, vocab_size=1000, threads=1, progress=False,
                           normalization="edugp")
    assert meta["options"]["normalization"] == meta["normalization"] == EDUGP.to_dict()
    scorer = PerplexityScorer(out, mode="ccnet", strict=True)
    assert scorer.normalization == EDUGP and scorer.check_normalization().ok  # a cased vocabulary
    with pytest.raises(ValueError, match="normalization cc_net does not fit this LM"):
        PerplexityScorer(out, normalization="cc_net")
    # a model trained before normalization.json existed gets it on the next (skipped) run
    (out / "normalization.json").unlink()
    lm_lib.train_lm(wiki_text, out, max_lines=600, vocab_size=1000, threads=1, progress=False,
                    normalization="edugp")
    assert PerplexityScorer(out).normalization == EDUGP
