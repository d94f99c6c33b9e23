"""Loaders on the real CoNLL-2002 / PAWS-X / XNLI files and a hand-written CoNLL-U file."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark import loaders
from benchmark.loaders import DataError, heldout_mask, load_task_data, read_conll2002, read_conllu, read_tsv
from benchmark.tasks import CONLL2002_ES_POS_LABELS, CONLL2002_NER_LABELS, DEV_TRAIN, OFFICIAL, UPOS_LABELS, get_task

HERE = Path(__file__).parent


def test_conll2002_real_splits(data_dir):
    train = read_conll2002(data_dir / "conll2002/esp.train", 2, CONLL2002_NER_LABELS)
    dev = read_conll2002(data_dir / "conll2002/esp.testa", 2, CONLL2002_NER_LABELS)
    test = read_conll2002(data_dir / "conll2002/esp.testb", 2, CONLL2002_NER_LABELS)
    # Sentence counts from the data README.
    assert (len(train), len(dev), len(test)) == (8323, 1915, 1517)
    first = train[0]
    assert first["tokens"][:3] == ["Melbourne", "(", "Australia"]
    assert [CONLL2002_NER_LABELS[i] for i in first["labels"][:3]] == ["B-LOC", "O", "B-LOC"]
    # Every POS tag in the real files is in the declared tag set (the reader raises otherwise).
    pos = read_conll2002(data_dir / "conll2002/esp.testb", 1, CONLL2002_ES_POS_LABELS)
    assert sum(len(s["tokens"]) for s in pos) == sum(len(s["tokens"]) for s in test)
    assert {CONLL2002_ES_POS_LABELS[i] for s in pos for i in s["labels"]} >= {"NC", "SP", "Fc", "VMI"}


def test_conll2002_docstart_and_bad_label(tmp_path):
    f = tmp_path / "mini.conll"
    f.write_text("-DOCSTART- -X- O\n\nEl DA O\nPerú NP B-LOC\n\nHola I O\n", encoding="utf-8")
    sents = read_conll2002(f, 2, CONLL2002_NER_LABELS)
    assert [s["tokens"] for s in sents] == [["El", "Perú"], ["Hola"]]
    assert sents[0]["line"] == 3
    f.write_text("El DA O\nPerú NP B-PLACE\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mini.conll:2: label 'B-PLACE' is not in the task's label list"):
        read_conll2002(f, 2, CONLL2002_NER_LABELS)
    f.write_text("El DA O\nPerú\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mini.conll:2: expected 'token POS NER'"):
        read_conll2002(f, 2, CONLL2002_NER_LABELS)


def test_conllu_skips_multiword_ranges_and_empty_nodes():
    sents = read_conllu(HERE / "data" / "mini_es_ancora.conllu", UPOS_LABELS)
    assert [s["tokens"] for s in sents] == [
        ["Vamos", "a", "el", "cine", "."],  # "al" (2-3) skipped, its words kept
        ["Juan", "come", "y", "María", "también", "."],  # empty node 4.1 skipped
    ]
    assert [UPOS_LABELS[i] for i in sents[0]["labels"]] == ["VERB", "ADP", "DET", "NOUN", "PUNCT"]


def test_conllu_bad_upos_names_line(tmp_path):
    f = tmp_path / "bad.conllu"
    f.write_text("1\tHola\thola\tGREETING\t_\t_\t0\troot\t_\t_\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.conllu:1: label 'GREETING'"):
        read_conllu(f, UPOS_LABELS)
    f.write_text("1\tHola\thola\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.conllu:1: expected 10 tab-separated"):
        read_conllu(f, UPOS_LABELS)


def test_pawsx_tsv_placeholder_rows_counted_and_quotes_unescaped(data_dir):
    rows, stats = read_tsv(data_dir / "pawsx_es/dev.tsv", ("sentence1", "sentence2"), "label", ("0", "1"), skip_placeholder="NS")
    assert stats.rows == 2000 and stats.skipped_placeholder == 38 and len(rows) == 1962
    # Row id 9 is CSV-quoted in the file: the reader must return the sentence without the quoting.
    row = next(r for r in rows if r["sentence1"].startswith("Aamir Khan"))
    assert row["sentence1"].endswith('en "Rang De Basanti".') and not row["sentence1"].startswith('"')
    _, test_stats = read_tsv(data_dir / "pawsx_es/test.tsv", ("sentence1", "sentence2"), "label", ("0", "1"), skip_placeholder="NS")
    assert test_stats.skipped_placeholder == 1


def test_tsv_bad_label_and_missing_column(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text("premise\thypothesis\tlabel\nA\tB\tneutral\nC\tD\tmaybe\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x.tsv:3: label 'maybe'"):
        read_tsv(f, ("premise", "hypothesis"), "label", ("entailment", "neutral", "contradiction"))
    with pytest.raises(DataError, match=r"x.tsv:1: missing column\(s\) sentence1"):
        read_tsv(f, ("sentence1",), "label", ("0", "1"))


def test_load_task_data_protocols_and_heldout(data_dir):
    ner = load_task_data(get_task("ner_conll2002_es"), source="local")
    assert ner.protocol == OFFICIAL and ner.sizes() == {"train": 8323, "validation": 1915, "test": 1517}
    assert ner.train.features["labels"].feature.names == list(CONLL2002_NER_LABELS)
    assert ner.info["files"]["train"]["sha256"]

    xnli = load_task_data(get_task("xnli_es"), source="local")
    assert xnli.protocol == DEV_TRAIN
    sizes = xnli.sizes()
    assert sizes["test"] == 5010 and sizes["train"] + sizes["validation"] == 2490
    # About 10% held out, grouped by premise (no premise on both sides), and seed-independent.
    assert 0.05 < sizes["validation"] / 2490 < 0.15
    assert not set(xnli.train["premise"]) & set(xnli.validation["premise"])
    again = load_task_data(get_task("xnli_es"), source="local")
    assert list(again.validation["hypothesis"]) == list(xnli.validation["hypothesis"])

    paws = load_task_data(get_task("pawsx_es"), source="local", limit_train=50, limit_eval=20)
    assert paws.sizes() == {"train": 50, "validation": 20, "test": 20}
    assert paws.info["files"]["validation"]["skipped_placeholder"] == 38
    assert paws.info["limit_train"] == 50


def test_heldout_mask_is_deterministic_and_about_ten_percent():
    keys = [f"sentence {i}" for i in range(5000)]
    mask = heldout_mask(keys)
    assert mask == heldout_mask(keys)
    assert 400 < sum(mask) < 600


def test_empty_split_and_missing_files_are_clear(tmp_path):
    (tmp_path / "conll2002").mkdir()
    (tmp_path / "conll2002/esp.train").write_text("El DA O\n", encoding="utf-8")
    (tmp_path / "conll2002/esp.testa").write_text("\n\n", encoding="utf-8")
    (tmp_path / "conll2002/esp.testb").write_text("El DA O\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"the validation split is empty \(.*esp.testa\)"):
        load_task_data(get_task("ner_conll2002_es"), source="local", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"mldoc_es: local files missing .*spanish.train.1000"):
        load_task_data(get_task("mldoc_es"), source="local", data_dir=tmp_path)


def test_ud_pos_local_loader_reads_conllu_splits(tmp_path):
    ud = tmp_path / "ud_es_ancora"
    ud.mkdir()
    text = (HERE / "data" / "mini_es_ancora.conllu").read_text(encoding="utf-8")
    for split in ("train", "dev", "test"):
        (ud / f"es_ancora-ud-{split}.conllu").write_text(text, encoding="utf-8")
    data = load_task_data(get_task("ud_pos_es"), source="auto", data_dir=tmp_path)
    assert data.source == "local" and data.protocol == OFFICIAL
    assert data.sizes() == {"train": 2, "validation": 2, "test": 2}
    assert data.test.features["labels"].feature.names == list(UPOS_LABELS)


def test_hub_source_offline_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match=r"could not load conll2002 \(es\) from the Hub.*Offline\?"):
        loaders._load_hub(get_task("ner_conll2002_es"))


def test_hub_loader_passes_the_pinned_revision(monkeypatch):
    import datasets

    seen = {}

    def fake_load_dataset(path, name=None, revision=None, **kwargs):
        seen.update(path=path, name=name, revision=revision)
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(FileNotFoundError):
        loaders._load_hub(get_task("pawsx_es"))
    assert seen == {"path": "google-research-datasets/paws-x", "name": "es", "revision": get_task("pawsx_es").hub_revision}


def test_every_local_loader_named_by_a_task_exists():
    from benchmark.tasks import TASKS

    assert {spec.local_loader for spec in TASKS.values() if spec.local_loader} <= set(loaders.LOCAL_LOADERS)


def test_mldoc_user_supplied_files(tmp_path):
    """MLDoc cannot be redistributed: the loader reads the user's 'LABEL<TAB>text' files."""
    root = tmp_path / "mldoc_es"
    root.mkdir()
    docs = "CCAT\tLa bolsa de Madrid cerró con subidas.\nGCAT\tEl Gobierno aprobó la ley.\nECAT\tEl paro bajó en marzo.\n"
    for name in ("spanish.train.1000", "spanish.dev", "spanish.test"):
        (root / name).write_text(docs, encoding="utf-8")
    data = load_task_data(get_task("mldoc_es"), source="local", data_dir=tmp_path)
    assert data.protocol == OFFICIAL and data.sizes() == {"train": 3, "validation": 3, "test": 3}
    assert data.train[1] == {"text": "El Gobierno aprobó la ley.", "labels": 2}
    # Another training size, as the task description advises: --set train_file=...
    (root / "spanish.train.5000").write_text(docs * 2, encoding="utf-8")
    bigger = load_task_data(get_task("mldoc_es").with_files({"train": "mldoc_es/spanish.train.5000"}), source="local", data_dir=tmp_path)
    assert bigger.sizes()["train"] == 6 and bigger.info["files"]["train"]["path"].endswith("spanish.train.5000")
    (root / "spanish.test").write_text("SPORTS\tGol.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"spanish.test:1: label 'SPORTS'"):
        load_task_data(get_task("mldoc_es"), source="local", data_dir=tmp_path)
