"""Registries, model resolution and its errors, tokenization/label alignment and truncation."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import numpy as np
import pytest

from bertin_bench.exports import export_info_path

from benchmark import models, tasks
from benchmark.finetune import IGNORE, encode
from benchmark.loaders import load_task_data
from benchmark.models import ModelError, check_compatible, load_model, load_tokenizer, resolve_model


def test_task_registry_refuses_duplicates_and_lists_names():
    with pytest.raises(ValueError, match="already registered"):
        tasks.register(tasks.get_task("pawsx_es"))
    with pytest.raises(KeyError, match=r"unknown task 'nerr'; valid tasks: pos_conll2002_es, ner_conll2002_es"):
        tasks.get_task("nerr")
    assert tasks.task_names(None) == ["pos_conll2002_es", "ner_conll2002_es", "pawsx_es", "xnli_es"]
    assert tasks.task_names(["pawsx_es,xnli_es", "pawsx_es"]) == ["pawsx_es", "xnli_es"]
    assert set(tasks.task_names("all")) == set(tasks.TASKS) and "ud_pos_es" in tasks.TASKS and "mldoc_es" in tasks.TASKS


def test_hyperparameters_follow_bertin_and_refuse_unknown_keys():
    assert tasks.get_task("ner_conll2002_es").hyperparameters() | {} == {**tasks.BERTIN_DEFAULTS}
    xnli = tasks.get_task("xnli_es").hyperparameters({"learning_rate": "3e-5"})
    assert (xnli["epochs"], xnli["max_length"], xnli["learning_rate"], xnli["batch_size"]) == (2, 256, 3e-5, 16)
    with pytest.raises(ValueError, match="unknown hyperparameter 'lr'.*or a data file: train_file, validation_file, test_file"):
        tasks.get_task("xnli_es").hyperparameters({"lr": 1})


def test_set_train_file_replaces_one_local_file_as_the_mldoc_description_says():
    mldoc = tasks.get_task("mldoc_es")
    assert "--set train_file=mldoc_es/spanish.train.5000" in mldoc.description  # what `bench ls tasks` advises
    hp, files = tasks.split_overrides({"train_file": "mldoc_es/spanish.train.5000", "test_file": "/abs/test", "epochs": "2"})
    assert (hp, files) == ({"epochs": "2"}, {"train": "mldoc_es/spanish.train.5000", "test": "/abs/test"})
    assert mldoc.with_files(files).hyperparameters(hp)["epochs"] == 2  # the advice is accepted
    spec = mldoc.with_files(files)
    assert spec.local_files == {"train": "mldoc_es/spanish.train.5000", "validation": "mldoc_es/spanish.dev", "test": "/abs/test"}
    assert mldoc.local_files["train"] == "mldoc_es/spanish.train.1000"  # the registry is untouched
    assert mldoc.with_files({}) is mldoc
    with pytest.raises(ValueError, match="empty path"):
        tasks.split_overrides({"train_file": " "})


def test_hub_tasks_pass_their_pinned_revision():
    paws = tasks.get_task("pawsx_es")
    assert paws.hub_revision == "8a04d940a42cd40658986fdd8e3da561533a3646"  # MTEB's pin
    for spec in tasks.TASKS.values():
        assert spec.hub_revision is None or len(spec.hub_revision) == 40


def test_model_registry_has_baselines_with_cited_reported_scores():
    hub_ids = {m.hub_id for m in models.MODELS.values()}
    assert {"dccuchile/bert-base-spanish-wwm-cased", "PlanTL-GOB-ES/roberta-base-bne", "bert-base-multilingual-cased",
            "bertin-project/bertin-roberta-base-spanish", "bertin-project/bertin-base-gaussian"} <= hub_ids
    for spec in models.MODELS.values():
        for rep in spec.reported:
            assert rep.source.startswith("https://huggingface.co/bertin-project/bertin-roberta-base-spanish/commit/")
            assert rep.task in tasks.TASKS and all(0 < v < 1 for v in rep.metrics.values())
    with pytest.raises(ValueError, match="already registered"):
        models.register(models.MODELS["beto"])


def test_resolve_model_errors(tmp_path, tiny_roberta_dir):
    with pytest.raises(ModelError, match=r"unknown model 'betoo'.*Registry: beto, roberta-bne"):
        resolve_model("betoo")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(empty)
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    shutil.copy(tiny_roberta_dir / "config.json", no_weights)
    with pytest.raises(ModelError, match="no weights"):
        resolve_model(no_weights)
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(tmp_path / "missing" / "dir")
    # a Hub id is checked when it is resolved: offline and not cached, it fails before any data loads
    with pytest.raises(ModelError, match=r"(?s)someone/some-model.*not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_model("someone/some-model")


def test_local_model_records_hash_and_pretraining_tokens(tmp_path, tiny_roberta_dir):
    ours = tmp_path / "ours"
    shutil.copytree(tiny_roberta_dir, ours)
    info = export_info_path(ours)  # the file pretraining's export writes
    info.write_text(json.dumps({"tokens_seen": 123456, "strategy": "gaussian"}))
    r = resolve_model(ours, model_name="gaussian-tiny")
    assert (r.name, r.source, r.pretraining_tokens, r.from_pt) == ("gaussian-tiny", "local", 123456, False)
    assert r.pretraining == {"tokens_seen": 123456, "strategy": "gaussian"} and len(r.content_hash) == 64
    # the identity is what the model computes: config, tokenizer, the weights loaded -- not the
    # export's dated record or a README (two exports of one checkpoint are one model) ...
    info.write_text(json.dumps({"tokens_seen": 1, "provenance": {"date": "another day"}}))
    (ours / "README.md").write_text("notes")
    assert resolve_model(ours).content_hash == r.content_hash
    # ... while other weights are another model
    weights = Path(r.weights_file)
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF  # one byte of the weights, flipped
    weights.write_bytes(bytes(blob))
    assert resolve_model(ours).content_hash != r.content_hash
    info.write_text(json.dumps({"tokens_seen": 123456, "strategy": "gaussian"}))
    info.write_text('{"tokens_seen": \n oops}')
    with pytest.raises(ModelError, match=rf"{info.name}:2: invalid JSON"):
        resolve_model(ours)
    info.unlink()
    plain = resolve_model(ours)
    assert plain.pretraining is None and plain.pretraining_tokens is None


def test_pytorch_only_checkpoint_needs_torch(tmp_path, tiny_roberta_dir, monkeypatch):
    pt = tmp_path / "pt-only"
    pt.mkdir()
    shutil.copy(tiny_roberta_dir / "config.json", pt)
    (pt / "pytorch_model.bin").write_bytes(b"")
    r = resolve_model(pt)
    assert r.from_pt
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ModelError, match=r"only PyTorch weights.*pip install 'bertin-bench\[torch\]'"):
        load_model(r, tasks.TOKEN, ("O",), 0)


def test_tokenizer_model_mismatch_is_refused(tmp_path, tiny_roberta_dir):
    bad = tmp_path / "mismatch"
    shutil.copytree(tiny_roberta_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["vocab_size"] = 1000
    (bad / "config.json").write_text(json.dumps(cfg))
    r = resolve_model(bad)
    tok, config = load_tokenizer(r)
    with pytest.raises(ModelError, match=r"tokenizer/model mismatch: the tokenizer has 50265 tokens but the model's vocab_size is 1000"):
        check_compatible(r, tok, config)


def test_first_subword_labels_and_truncation_counts(tiny_roberta_dir):
    r = resolve_model(tiny_roberta_dir)
    tok, _ = load_tokenizer(r)
    assert tok.add_prefix_space  # RoBERTa BPE on pre-split words
    # BERTIN's tokenizer.json has no post-processor: <s> ... </s> (and </s></s> between pairs) are attached.
    assert r.added_post_processor and r.record()["added_post_processor"]
    assert tok("Hola", "mundo").input_ids == [tok.bos_token_id, *tok("Hola", add_special_tokens=False).input_ids,
                                              tok.eos_token_id, tok.eos_token_id, *tok("mundo", add_special_tokens=False).input_ids, tok.eos_token_id]
    spec = tasks.get_task("ner_conll2002_es")
    data = load_task_data(spec, source="local", limit_train=200, limit_eval=10)
    enc = encode(data.train, spec, tok, max_length=128)
    assert enc.truncation["truncated_examples"] == 0 and enc.truncation["unscored_words"] == 0
    for i in range(20):
        labels, gold, pos = enc.labels[i], enc.gold[i], enc.word_positions[i]
        # Exactly one labelled position per word: its first subword; specials and continuations ignored.
        assert (labels != IGNORE).sum() == len(gold)
        assert labels[0] == IGNORE and labels[-1] == IGNORE
        assert list(labels[pos]) == gold
        words = data.train[i]["tokens"]
        assert tok.convert_ids_to_tokens(int(enc.input_ids[i][pos[0]])).lstrip("Ġ") == tok.tokenize(words[0])[0].lstrip("Ġ")

    short = encode(data.train, spec, tok, max_length=16)
    lengths = np.array([len(x) for x in short.input_ids])
    assert lengths.max() == 16
    assert short.input_ids[0][-1] == tok.eos_token_id  # the closing special token is kept
    long_examples = sum(len(x) > 16 for x in enc.input_ids)
    assert short.truncation["truncated_examples"] == long_examples > 0
    lost = sum(int((p < 0).sum()) for p in short.word_positions)
    assert short.truncation["unscored_words"] == lost > 0


def test_pair_encoding_counts_truncated_examples(tiny_roberta_dir, data_dir):
    r = resolve_model(tiny_roberta_dir)
    tok, _ = load_tokenizer(r)
    spec = tasks.get_task("xnli_es")
    data = load_task_data(spec, source="local", limit_train=100, limit_eval=10)
    full = encode(data.train, spec, tok, max_length=512)
    short = encode(data.train, spec, tok, max_length=32)
    assert full.truncation["truncated_examples"] == 0
    assert short.truncation["truncated_examples"] == sum(len(x) > 32 for x in full.input_ids) > 0
    assert max(len(x) for x in short.input_ids) == 32


def test_max_length_is_clamped_to_the_model_positions(tiny_roberta_dir):
    from benchmark.runner import model_capacity

    _, config = load_tokenizer(resolve_model(tiny_roberta_dir))
    # RoBERTa positions start after the padding index: 130 embeddings -> 128 tokens.
    assert model_capacity(config) == 128
