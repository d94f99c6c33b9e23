"""Normalization as an explicit part of the scorer: each preset against the code it reproduces,
the choice by model source, the vocabulary check, and the identity that refuses mixing."""

from __future__ import annotations

import itertools
import json
import logging
import shutil

import pytest
from click.testing import CliRunner

from sampling.boundaries import Boundaries, estimate_boundaries
from sampling.normalize import (
    CC_NET, EDUGP, PRESETS, RAW, Normalization, preset, vocabulary_conformance,
)
from sampling.scorer import PerplexityScorer, identity_diffs
from tests.sampling import ccnet_reference as ccnet_ref
from tests.sampling import edugp_reference as edugp_ref
from tests.sampling.test_normalize import EDGE_CASES
from tests.sampling.util import read_lines

ODD = ["１２ — «ÉXITO»\n\nsegunda línea\x07", "a", "x" * 3000, "  \n\n ", "tab\there\u3000ideographic space",
       "El Gobierno de ESPAÑA aprobó 3,5 millones", "İstanbul ǅ ß ﬁ Ⅻ"]


@pytest.fixture(scope="module")
def docs(web_sample):
    return [json.loads(line)["text"] for line in read_lines(web_sample, 300)] + ODD


@pytest.fixture(scope="module")
def edugp_model(kenlm_dir):
    return edugp_ref.KenlmModel(str(kenlm_dir / "es.arpa.bin"), str(kenlm_dir / "es.sp.model"))


# -- each preset is bit-equal to the code it reproduces -------------------------------------------


@pytest.mark.parametrize("lower,accent,numbers,punct", list(itertools.product([False, True], [False, True],
                                                                               [False, True], [0, 1, 2])))
def test_every_setting_normalizes_as_edugp_code(lower, accent, numbers, punct):
    norm = Normalization(lowercase=lower, strip_accents=accent, digits=numbers, punct=punct).normalizer()
    ref = edugp_ref.KenlmModel.__new__(edugp_ref.KenlmModel).normalize  # its normalizer, no model loaded
    for text in EDGE_CASES + ODD:
        assert norm.normalize(text) == ref(text, accent=accent, case=lower, numbers=numbers, punct=punct), text


def test_edugp_preset_is_bit_equal_to_edugp_get_perplexity(kenlm_dir, edugp_model, docs):
    """hf://edugp/kenlm-style scoring: case and accents kept, digits and punctuation normalized."""
    scorer = PerplexityScorer(kenlm_dir, mode="ccnet", normalization="edugp")
    expected = [edugp_model.get_perplexity(t) for t in docs]
    assert scorer.perplexities(docs) == expected  # exact float equality
    assert (edugp_model.case, edugp_model.accent, edugp_model.numbers, edugp_model.punct) == (False, False, True, 1)
    # not the cc_net numbers: the presets really differ on this text
    cc = PerplexityScorer(kenlm_dir, mode="ccnet").perplexities(docs)
    assert sum(a != b for a, b in zip(cc, expected)) > 0.9 * len(docs)


def test_cc_net_preset_is_edugp_code_with_ccnet_settings(kenlm_dir, docs, ccnet_scorer):
    lowered = edugp_ref.KenlmModel(str(kenlm_dir / "es.arpa.bin"), str(kenlm_dir / "es.sp.model"),
                                   lower_case=True, remove_accents=True)
    assert ccnet_scorer.normalization == CC_NET
    assert ccnet_scorer.perplexities(docs) == [lowered.get_perplexity(t) for t in docs]
    assert all(CC_NET.normalizer().normalize(t) == ccnet_ref.normalize(t) for t in docs)


def test_raw_normalization_is_edugp_without_normalizing(kenlm_dir, edugp_model, docs):
    scorer = PerplexityScorer(kenlm_dir, mode="ccnet", normalization="raw")
    assert scorer.perplexities(docs) == [edugp_model.get_perplexity(t, normalize_cc_net=False) for t in docs]


def test_datatrove_normalization_is_a_documented_difference(kenlm_dir, docs):
    """datatrove's KenlmModel scores the same edugp models after lowercasing, stripping accents and
    collapsing each number (with its decimals) to one "0": neither edugp's nor CCNet's text."""
    perplexity = pytest.importorskip("datatrove.utils.perplexity")
    datatrove = perplexity.KenlmModel("wikipedia", "es")  # loads nothing until a model is used
    sample = docs[:60]
    ours = {name: PRESETS[name].normalizer().normalize for name in ("cc_net", "edugp")}
    theirs = [datatrove.normalize(t) for t in sample]
    assert datatrove.normalize("El Año 2021, 3,5 €") == "el ano 0, 0 €"
    assert ours["cc_net"]("El Año 2021, 3,5 €") == "el ano 0000, 0,0 €"
    assert ours["edugp"]("El Año 2021, 3,5 €") == "El Año 0000, 0,0 €"
    for name, fn in ours.items():
        assert sum(fn(t) != d for t, d in zip(sample, theirs)) > len(sample) // 2, name
    # The gap in perplexity, with the same LM: datatrove's text scored as edugp's code would.
    edugp = edugp_ref.KenlmModel(str(kenlm_dir / "es.arpa.bin"), str(kenlm_dir / "es.sp.model"))
    dt_pp = [edugp.get_perplexity(t, normalize_cc_net=False) for t in theirs]
    cc_pp = PerplexityScorer(kenlm_dir, mode="ccnet").perplexities(sample)
    assert sum(a != b for a, b in zip(dt_pp, cc_pp)) > len(sample) // 2


# -- which normalization a model gets -------------------------------------------------------------


def test_presets_are_chosen_by_model_source(kenlm_dir, tmp_path):
    assert PerplexityScorer(kenlm_dir).normalization == CC_NET  # the shared model: as scored so far
    hub = PerplexityScorer("hf://edugp/kenlm/wikipedia", mode="ccnet")
    assert hub.normalization == EDUGP and "edugp" in hub.normalization_source
    copy = tmp_path / "models--edugp--kenlm" / "wikipedia"  # the Hub cache layout
    shutil.copytree(kenlm_dir, copy)
    assert PerplexityScorer(copy).normalization == EDUGP
    assert PerplexityScorer(copy, normalization="cc_net").normalization == CC_NET  # overridable
    assert PerplexityScorer(kenlm_dir, mode="raw").normalization == RAW
    with pytest.raises(ValueError, match="does not fit raw mode"):
        PerplexityScorer(kenlm_dir, mode="raw", normalization="edugp")
    with pytest.raises(ValueError, match="unknown normalization 'lower'"):
        PerplexityScorer(kenlm_dir, normalization="lower")


def test_a_recorded_normalization_is_binding(kenlm_dir, tmp_path):
    model = tmp_path / "mine"
    shutil.copytree(kenlm_dir, model)
    EDUGP.save(model)
    scorer = PerplexityScorer(model)
    assert scorer.normalization == EDUGP and "normalization.json" in scorer.normalization_source
    assert PerplexityScorer(model, normalization="edugp").normalization == EDUGP
    with pytest.raises(ValueError, match=r"normalization cc_net does not fit this LM \(recorded in .*normalization.json"):
        PerplexityScorer(model, normalization="cc_net")
    (model / "normalization.json").write_text('{"format": "bertin-bench/normalization/v1", "name": "edugp", '
                                              '"lowercase": true}')
    with pytest.raises(ValueError, match="normalization.json: normalization lacks"):
        PerplexityScorer(model)
    # a `bench lm train` model from before the file existed: cc_net, and binding
    (model / "normalization.json").unlink()
    (model / "lm_meta.json").write_text("{}")
    with pytest.raises(ValueError, match="lm_meta.json"):
        PerplexityScorer(model, normalization="edugp")


def test_normalization_values_round_trip_and_validate():
    for norm in PRESETS.values():
        assert Normalization.from_dict(norm.to_dict()) == norm and preset(norm.name) == norm
    custom = Normalization(punct=2)
    assert custom.name == "custom" and Normalization.from_dict(custom.to_dict()) == custom
    with pytest.raises(ValueError, match="holds the settings of 'cc_net'"):
        Normalization.from_dict({**CC_NET.to_dict(), "name": "edugp"})
    with pytest.raises(ValueError, match="punct must be 0"):
        Normalization(punct=3)
    with pytest.raises(ValueError, match="unknown normalization fields"):
        Normalization.from_dict({**CC_NET.to_dict(), "casefold": True})


# -- the vocabulary check -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cased_sp(tmp_path_factory, wiki_text, kenlm_dir):
    """Two small sentencepiece models trained here on real Spanish Wikipedia lines: one on the text
    as written (cased, accented), one on its cc_net normalization; each beside the shared KenLM file
    (the check reads only the vocabulary)."""
    import sentencepiece as spm

    root = tmp_path_factory.mktemp("sp")
    lines = [line for line in wiki_text.read_text(encoding="utf-8").split("\n")[:3000] if line.strip()]
    out = {}
    for name, norm in (("cased", RAW), ("cc_net", CC_NET)):
        text = root / f"{name}.txt"
        text.write_text("\n".join(map(norm.normalizer().normalize, lines)) + "\n", encoding="utf-8")
        model = root / name
        model.mkdir()
        spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(model / "es.sp"), vocab_size=2000,
                                       model_type="unigram", character_coverage=0.9999, num_threads=1,
                                       minloglevel=2)
        shutil.copy(kenlm_dir / "es.arpa.bin", model / "es.arpa.bin")
        out[name] = model
    return out


def test_a_cased_accented_vocabulary_is_refused_with_cc_net(cased_sp, caplog):
    scorer = PerplexityScorer(cased_sp["cased"], mode="ccnet", normalization="cc_net")
    with caplog.at_level(logging.WARNING, logger="sampling.scorer"):
        conformance = scorer.check_normalization()
    assert not conformance.ok and len(conformance.problems) == 2
    assert conformance.uppercase > 0.05 * conformance.pieces and conformance.accented > 0.05 * conformance.pieces
    assert f"{conformance.uppercase:,} of {conformance.pieces:,}" in caplog.text and "lowercases" in caplog.text
    with pytest.raises(ValueError, match="hold uppercase letters .* but normalization cc_net lowercases"):
        PerplexityScorer(cased_sp["cased"], mode="ccnet", normalization="cc_net", strict=True).check_normalization()
    assert PerplexityScorer(cased_sp["cased"], normalization="edugp", strict=True).check_normalization().ok


def test_a_lowercase_accent_free_vocabulary_fits_cc_net_only(cased_sp):
    fits = PerplexityScorer(cased_sp["cc_net"], mode="ccnet", strict=True).check_normalization()
    assert fits.ok and fits.accented == 0 and fits.uppercase <= 0.005 * fits.pieces
    with pytest.raises(ValueError, match="trained on lowercased text, but normalization edugp keeps case"):
        PerplexityScorer(cased_sp["cc_net"], normalization="edugp", strict=True).check_normalization()


def test_the_shared_model_vocabulary(kenlm_dir):
    """The shared kenlm_es vocabulary is lowercase but keeps accents (its LM too: "▁película" is
    a KenLM word): cc_net, its normalization so far, is reported as stripping accents it was
    trained with; edugp as keeping a case it never saw."""
    cc = PerplexityScorer(kenlm_dir, mode="lines").check_normalization()
    assert cc.uppercase <= 0.005 * cc.pieces and cc.accented > 0.05 * cc.pieces
    assert [p.split(" hold ")[1].split(" (")[0] for p in cc.problems] == ["accented letters"]
    ed = PerplexityScorer(kenlm_dir, mode="lines", normalization="edugp").check_normalization()
    assert any("keeps case" in p for p in ed.problems)
    assert PerplexityScorer(kenlm_dir, mode="raw").check_normalization() is None  # no sentencepiece used
    assert vocabulary_conformance(["▁a", "0", "▁00", ","], CC_NET).pieces == 1  # letter-bearing pieces only


# -- the identity refuses mixing normalizations ---------------------------------------------------


def test_boundaries_from_another_normalization_are_refused(kenlm_dir, web_slice, tmp_path):
    cc = PerplexityScorer(kenlm_dir, mode="ccnet")
    ed = PerplexityScorer(kenlm_dir, mode="ccnet", normalization="edugp")
    assert cc.identity()["normalization"]["name"] == "cc_net"
    assert identity_diffs(cc.identity(), ed.identity()) == [
        f"normalization: {CC_NET.to_dict()!r} vs {EDUGP.to_dict()!r}"]
    b = estimate_boundaries(web_slice(200), scorer=cc, n_docs=200, progress=False)
    path = b.save(tmp_path / "b.json")
    loaded = Boundaries.load(path)
    loaded.check(cc.identity())
    with pytest.raises(ValueError, match=r"b\.json were estimated with another LM or scoring mode \(or normalization\)"):
        loaded.check(ed.identity())
    # the presets give other quartiles on the same documents
    assert estimate_boundaries(web_slice(200), scorer=ed, n_docs=200, progress=False).q2 != b.q2


@pytest.mark.parametrize("mode,implied", [("ccnet", "cc_net"), ("lines", "cc_net"), ("raw", "raw")])
def test_old_boundaries_without_normalization_read_as_what_their_mode_used(kenlm_dir, tmp_path, mode, implied):
    """Migration: before normalization was recorded, ccnet/lines always used cc_net and raw none."""
    scorer = PerplexityScorer(kenlm_dir, mode=mode)
    old_identity = {k: v for k, v in scorer.identity().items() if k != "normalization"}
    old = {"format": "bertin-bench/boundaries/v1", "q1": 1.0, "q2": 2.0, "q3": 3.0, "identity": old_identity,
           "mode": mode, "n": 10}
    (tmp_path / "old.json").write_text(json.dumps(old))
    b = Boundaries.load(tmp_path / "old.json")
    assert b.identity["normalization"]["name"] == implied
    b.check(scorer.identity())
    if mode != "raw":
        with pytest.raises(ValueError, match="normalization"):
            b.check(PerplexityScorer(kenlm_dir, mode=mode, normalization="edugp").identity())


def test_cli_normalization_option_is_recorded_and_checked(kenlm_dir, web_slice, tmp_path):
    from bertin_bench.cli import main

    runner = CliRunner()
    path = web_slice(60)
    res = runner.invoke(main, ["sample", "boundaries", "-i", str(path), "-o", str(tmp_path / "b.json"),
                               "--lm-dir", str(kenlm_dir), "--mode", "ccnet", "--normalization", "edugp",
                               "--n-docs", "60"])
    assert res.exit_code == 0, res.output
    assert "with edugp normalization" in res.output
    assert json.loads((tmp_path / "b.json").read_text())["identity"]["normalization"] == EDUGP.to_dict()
    res = runner.invoke(main, ["sample", "run", "-i", str(path), "-o", str(tmp_path / "r"), "--lm-dir",
                               str(kenlm_dir), "--boundaries", str(tmp_path / "b.json"), "--strategy", "random"])
    assert res.exit_code == 1 and "normalization" in res.output
    res = runner.invoke(main, ["sample", "score", "-i", str(path), "-o", str(tmp_path / "s"), "--lm-dir",
                               str(kenlm_dir), "--mode", "ccnet", "--normalization", "edugp"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s" / "scorer.json").read_text())["normalization"]["name"] == "edugp"


def test_scored_shards_from_another_normalization_are_not_reused(kenlm_dir, web_slice, tmp_path):
    from sampling.io import parse_input, stored_perplexity_ok
    from sampling.options import ScoreOptions
    from sampling.pipeline import run_score

    cc = PerplexityScorer(kenlm_dir, mode="ccnet")
    run_score(web_slice(30), tmp_path / "s", scorer=cc, options=ScoreOptions())
    spec = parse_input(tmp_path / "s")
    assert stored_perplexity_ok(spec, cc.identity())
    assert not stored_perplexity_ok(spec, PerplexityScorer(kenlm_dir, mode="ccnet", normalization="edugp").identity())
