"""The ``bench pretrain`` command line: help with examples, config printing, the tokenizer command."""

import json
import shutil

import pytest
import yaml
from click.testing import CliRunner

from bertin_bench.cli import main as bench


def test_help_has_examples_for_every_command():
    for args in (["pretrain", "--help"], ["pretrain", "export", "--help"], ["pretrain", "tokenizer", "--help"]):
        result = CliRunner().invoke(bench, args)
        assert result.exit_code == 0 and "Examples:" in result.output and "bench pretrain" in result.output


def test_print_config_applies_overrides_and_rejects_unknown_keys(tmp_path):
    result = CliRunner().invoke(bench, ["pretrain", "--config", "base", "training.seq_len=512", "--out",
                                        str(tmp_path / "r"), "--print-config"])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load(result.output)
    assert cfg["training"]["seq_len"] == 512 and cfg["out_dir"] == str(tmp_path / "r")
    assert cfg["model"]["max_position_embeddings"] == 514
    bad = CliRunner().invoke(bench, ["pretrain", "--config", "tiny", "model.layers=3", "--print-config"])
    assert bad.exit_code != 0 and "model.layers" in bad.output


def test_tokenizer_command_trains_a_roberta_bpe(shards, tmp_path):
    from pretraining.tokenizer import load_tokenizer

    out = tmp_path / "tok"
    result = CliRunner().invoke(bench, ["pretrain", "tokenizer", "--data", str(shards), "--vocab-size", "600",
                                        "--max-docs", "500", "--out", str(out)])
    assert result.exit_code == 0, result.output
    tok = load_tokenizer(out)
    assert len(tok) == 600
    assert [tok.convert_ids_to_tokens(i) for i in range(5)] == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    # Byte-level: any Spanish text round-trips.
    text = "¿Dónde está el niño? ¡Ahí, señora!"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "RobertaTokenizer"


def _tree(root):
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() else None) for p in root.rglob("*"))


def test_tokenizer_out_holding_other_files_is_refused_and_kept(shards, tmp_path):
    """Issue 11, item 1: --out pointing at a directory with the training data itself must not
    delete it (it used to, with exit 0)."""
    data = tmp_path / "data"
    shutil.copytree(shards, data)
    before = _tree(data)
    result = CliRunner().invoke(bench, ["pretrain", "tokenizer", "--data", str(data), "--vocab-size", "600",
                                        "--max-docs", "300", "--out", str(data)])
    assert result.exit_code == 1
    assert "holds no tokenizer" in result.output and "nothing was deleted" in result.output
    assert "--out" in result.output  # says how to proceed
    assert "Traceback" not in result.output
    assert _tree(data) == before


def test_tokenizer_replaces_only_a_tokenizer_it_wrote(shards, tmp_path):
    out = tmp_path / "tok"
    args = ["pretrain", "tokenizer", "--data", str(shards), "--max-docs", "300", "--out", str(out)]
    assert CliRunner().invoke(bench, [*args, "--vocab-size", "600"]).exit_code == 0
    result = CliRunner().invoke(bench, [*args, "--vocab-size", "700"])  # ours: replaced
    assert result.exit_code == 0, result.output
    from pretraining.tokenizer import load_tokenizer

    assert len(load_tokenizer(out)) == 700
    # A tokenizer from elsewhere (no mark of ours) is somebody's: refused, untouched.
    (out / "bertin_tokenizer.json").unlink()
    before = _tree(out)
    result = CliRunner().invoke(bench, [*args, "--vocab-size", "600"])
    assert result.exit_code == 1 and "holds no tokenizer" in result.output
    assert _tree(out) == before
    # An empty directory is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(bench, [*args[:-1], str(empty), "--vocab-size", "600"])
    assert result.exit_code == 0, result.output
    assert len(load_tokenizer(empty)) == 600


def test_train_refuses_a_directory_that_is_not_a_run(shards, small_bpe, tmp_path):
    from pretraining.train import train

    from .helpers import tiny_config

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "paper.tex").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no pre-training run"):
        train(tiny_config(shards, notes, str(small_bpe), "model.vocab_size=1000"))
    assert sorted(p.name for p in notes.iterdir()) == ["paper.tex"]
