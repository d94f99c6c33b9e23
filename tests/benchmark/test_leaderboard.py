"""The published leaderboard on the committed study results: model identity (never the display name
alone), the tidy CSV, split labels of the reported rows, the Markdown/HTML views, and the page in
a headless browser."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from benchmark import leaderboard, results, schema_doc
from benchmark.leaderboard import build_leaderboard
from benchmark.models import MODELS
from benchmark.reported import REPORTED, TEST, VALIDATION

ROOT = Path(__file__).parents[2]
PUBLISHED = ROOT / "results"
STUDY = PUBLISHED / "studies" / "demo"  # the main job's study: always committed
# One model of the earlier small study with 3 fine-tuning seeds per task, in schema 1 (as published
# at commit 7b7435f): rows with a spread, and old files read through the converter.
OLD = Path(__file__).parent / "fixtures" / "schema1"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """The published board rebuilt from a copy of the committed studies."""
    out = tmp_path_factory.mktemp("results")
    shutil.copytree(PUBLISHED / "studies", out / "studies")
    return out, build_leaderboard(out)


@pytest.fixture(scope="module")
def old_board(tmp_path_factory):
    """The committed studies plus the schema-1 fixture, as a study folder named small-v1."""
    out = tmp_path_factory.mktemp("old")
    shutil.copytree(PUBLISHED / "studies", out / "studies")
    shutil.copytree(OLD, out / "studies" / "small-v1" / "runs")
    build_leaderboard(out)
    return out


def test_names_that_normalize_alike_never_share_a_directory():
    names = ["Mi Modelo", "mi-modelo", "mi_modelo", "mi modelo", "MI-MODELO", "mi--modelo", "mi/modelo", "mi-modelo-",
             "Mi.Modelo", "mi.modelo"]
    paths = [results.run_path("r", n, "ner_conll2002_es", 0) for n in names]
    # Distinct even on a case-folding file system (macOS, Windows).
    assert len({str(p).lower() for p in paths}) == len(names)
    # Plain names keep their readable directory (and the committed studies' paths).
    assert results.slug("bertin-project/bertin-base-gaussian") == "bertin-project--bertin-base-gaussian"
    assert results.slug("small-gaussian") == "small-gaussian"
    assert re.fullmatch(r"mi-modelo@[0-9a-f]{10}", results.slug("Mi Modelo"))
    committed = sorted(PUBLISHED.glob("studies/*/runs/*/*/seed*.json"))
    assert committed
    for path in committed:
        res = results.FinetuneResult.from_disk(path)
        assert results.run_path(path.parents[3], res.model.name, res.task.name, res.seed) == path


def test_identity_is_content_hash_or_hub_id_and_commit():
    res = results.FinetuneResult.from_disk(OLD / "small-random" / "ner_conll2002_es" / "seed0.json")
    assert results.model_identity(res) == f"local:{res.model.content_hash}"
    hub = results.ModelRecord(name="beto", source="registry", hub_id="dccuchile/bert-base-spanish-wwm-cased",
                              revision="abc123", local_path=None, content_hash=None, family="bert", from_pt=True,
                              pretraining_tokens=None, added_post_processor=False)
    assert results.model_identity(hub) == "hub:dccuchile/bert-base-spanish-wwm-cased@abc123"
    hub.revision = None
    assert results.model_identity(hub) == "hub:dccuchile/bert-base-spanish-wwm-cased"


def _two_models_named_hf(tmp_path: Path) -> Path:
    """Two different exports, both named `hf` (the default name of an export directory), in two
    results folders, as two studies would hold them."""
    src = sorted(OLD.glob("small-random/ner_conll2002_es/seed*.json"))
    for k, (folder, files) in enumerate((("studies/a", src[:2]), ("studies/b", src[2:]))):
        for f in files:
            raw = json.loads(f.read_text())
            raw["model"]["name"] = "hf"
            raw["model"]["content_hash"] = f"{k}" * 64
            dest = tmp_path / folder / "runs" / "hf" / "ner_conll2002_es" / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(raw))
    return tmp_path


def test_two_models_under_one_name_are_never_merged(tmp_path, caplog):
    out = _two_models_named_hf(tmp_path)
    with caplog.at_level(logging.WARNING):
        df = build_leaderboard(out, include_reported=False)
    main = df[(df.split == "test") & df.main]
    assert sorted(main["model"]) == ["hf#00000000", "hf#11111111"]
    assert sorted(main["n"]) == [1, 2]  # each model's own runs, not one row of 3
    assert "2 different models are named 'hf'" in caplog.text
    groups = results.group_by_model(r for _, root in leaderboard.result_roots(out) for r in results.iter_results(root))
    assert {g.name: len(g.results) for g in groups.values()} == {"hf#00000000": 2, "hf#11111111": 1}


def test_csv_is_tidy_for_pandas(old_board):
    out = old_board
    csv = pd.read_csv(out / "leaderboard.csv")
    assert list(csv.columns) == list(leaderboard.COLUMN_NAMES)
    assert csv["n"].dtype.kind == "i"  # integers, not 3.0
    assert set(csv["split"]) <= {"test", "validation", "validation-heldout", "unstated"}
    # Scores in percent: the mean of the committed runs' main scores x 100.
    runs = [results.FinetuneResult.from_disk(p) for p in OLD.glob("small-random/pawsx_es/seed*.json")]
    row = csv[(csv.model == "small-random") & (csv.task == "pawsx_es") & (csv.split == "test") & csv.main].iloc[0]
    assert row["score"] == pytest.approx(100 * sum(r.main_score for r in runs) / len(runs), abs=1e-4)
    assert row["n"] == 3 and row["protocol"] == "dev-train" and row["limit_train"] == 1000 and row["metric"] == "accuracy"
    assert row["weights"] == "flax" and row["identity"].startswith("local:") and row["origin"] == "studies/small-v1"
    # The dev score of the best epoch is there too, labelled by its split.
    assert len(csv[(csv.model == "small-random") & (csv.task == "pawsx_es") & (csv.split == "validation-heldout")]) == 2
    # One run: no spread (blank, not 0).
    single = csv[(csv.n == 1) & (csv.kind == "measured")]
    assert len(single) > 0 and single["std"].isna().all()
    assert (csv[csv.n > 1]["std"].notna()).all()
    ner = csv[(csv.task == "ner_conll2002_es") & csv.main]
    assert set(ner["metric"]) == {"f1"} and set(csv[(csv.task == "pos_conll2002_es") & csv.main]["metric"]) == {"accuracy"}


def test_reported_rows_carry_split_protocol_seeds_and_registry_ids():
    assert len(REPORTED) > 100
    for rep in REPORTED:
        assert rep.split and rep.protocol and rep.seeds and rep.source, rep
        if rep.model in MODELS:
            assert MODELS[rep.model].hub_id == rep.hub_id, rep.model
    card = [r for r in REPORTED if r.table.startswith("BERTIN card")]
    assert {r.split for r in card} == {VALIDATION}  # do_eval only
    assert {r.split for r in REPORTED if r.table == "PlanTL MarIA table"} == {TEST}
    t4 = {r.model for r in card if r.table == "BERTIN card Table 4"}
    assert len(t4) == 10 and "bertin-stepwise-512" in t4
    assert "bertin-stepwise-512" not in {r.model for r in card if r.table == "BERTIN card Table 3"}  # WIP there


def test_validation_numbers_never_sit_in_the_test_table(old_board):
    out = old_board
    md = (out / "leaderboard.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", md, flags=re.S | re.M))
    test = next(v for k, v in sections.items() if k.startswith("Test split"))
    validation = next(v for k, v in sections.items() if k.startswith("Validation split"))
    assert "BERTIN card" not in test and "BERTIN card Table 4" in validation
    assert "PlanTL MarIA table" in test and "PlanTL MarIA table" not in validation
    assert "90.20 (f1)" in test  # MarIA's PAWS-X is an F1, not the task's accuracy: labelled
    assert "89.65*" in validation  # the card's repeated run keeps its `*`
    assert "83.06 ± 0.35 (n=3)" in test and "56.80 ± 0.00 (n=3, dev-train)" in test  # the schema-1 fixture's


def test_study_leaderboard_stays_its_own(tmp_path):
    shutil.copytree(STUDY / "runs", tmp_path / "runs")
    df = build_leaderboard(tmp_path, include_reported=False)
    assert set(df["kind"]) == {"measured"} and set(df["origin"]) == {"."}
    assert (tmp_path / "leaderboard.md").is_file() and not (tmp_path / "leaderboard.html").exists()


def test_published_leaderboard_is_up_to_date(board):
    out, _ = board
    for name in ("leaderboard.csv", "leaderboard.md", "leaderboard.html"):
        assert (PUBLISHED / name).read_text(encoding="utf-8") == (out / name).read_text(encoding="utf-8"), (
            f"results/{name} is stale: run `bench leaderboard`")


def test_schema_doc_has_the_data_dictionary():
    doc = schema_doc.schema_markdown()
    for name in leaderboard.COLUMN_NAMES:
        assert f"| `{name}` |" in doc


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_sorts_and_filters_in_a_browser(board, tmp_path):
    out, df = board
    url = (out / "leaderboard.html").as_uri() + "#sort=ner_conll2002_es&dir=desc&split=test"
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", url).stdout
    assert 'data-ready="1"' in dom, "the page's script did not run"
    rows = re.findall(r"<tr class=\"(measured|reported)\"([^>]*)>(.*?)</tr>", dom, flags=re.S)
    shown = [(attrs, cells) for _, attrs, cells in rows if "hidden" not in attrs]
    assert shown and all('data-split="test"' in attrs for attrs, _ in shown)
    assert len(shown) == len({(r.kind, r.origin, r.model) for r in df[df.split == "test"].itertuples()})
    ner = leaderboard.task_columns(df, "bertin").index("ner_conll2002_es")  # the cells with data-v are the tasks'
    values = [re.findall(r'data-v="([^"]*)"', cells)[ner] for _, cells in shown]
    numbers = [float(v) for v in values if v]
    assert len(numbers) >= 2 and numbers == sorted(numbers, reverse=True)
    assert values[len(numbers):] == [""] * (len(values) - len(numbers))  # empty cells last
    shot = tmp_path / "leaderboard.png"
    _chromium("--window-size=1400,1000", "--virtual-time-budget=5000", f"--screenshot={shot}", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
