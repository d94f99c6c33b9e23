"""The ``bench pretrain`` command line: help with examples, config printing, the tokenizer command."""

import json

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
