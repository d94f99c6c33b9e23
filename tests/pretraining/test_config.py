import pytest

from pretraining.config import PretrainConfig, from_dict, load_config


def test_base_preset_is_bertins_recipe():
    cfg = load_config("base")
    m, o, t = cfg.model, cfg.optimizer, cfg.training
    assert (m.num_hidden_layers, m.hidden_size, m.num_attention_heads, m.intermediate_size) == (12, 768, 12, 3072)
    assert (m.vocab_size, m.max_position_embeddings, m.dtype) == (50265, 514, "bfloat16")
    assert (t.batch_size, t.max_steps, cfg.schedule.warmup_steps, cfg.schedule.end_learning_rate) == (2048, 250_000, 24_000, 0.0)
    assert (o.learning_rate, o.b1, o.b2, o.eps, o.weight_decay) == (6e-4, 0.9, 0.98, 1e-6, 0.01)


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_presets_round_trip_and_validate(name):
    cfg = load_config(name)
    assert isinstance(cfg, PretrainConfig) and cfg.name == name
    assert from_dict(cfg.to_dict()) == cfg
    cfg.validate()


def test_dotted_overrides_are_typed():
    cfg = load_config("tiny", ["training.max_steps=7", "optimizer.learning_rate=2e-4", "data.train_files=a/b",
                               "training.masked_only_logits=false", "training.max_tokens=1e6"])
    assert cfg.training.max_steps == 7 and cfg.optimizer.learning_rate == 2e-4
    assert cfg.data.train_files == ["a/b"] and cfg.training.masked_only_logits is False
    # the token budget wins over max_steps: ceil(1e6 / (16 * 128))
    assert cfg.total_steps == 489


@pytest.mark.parametrize("override, message", [
    ("model.hiden_size=3", "model.hiden_size"),
    ("trainig.max_steps=3", "trainig"),
    ("training.max_steps=abc", "training.max_steps: expected an integer"),
    ("training.masked_only_logits=3", "training.masked_only_logits: expected true/false"),
    ("max_steps", "section.key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        load_config("tiny", [override])


def test_validate_catches_inconsistent_settings():
    with pytest.raises(ValueError, match="max_position_embeddings >= 514"):
        load_config("tiny", ["training.seq_len=512", "model.max_position_embeddings=130"]).validate()
    with pytest.raises(ValueError, match="divisible by training.grad_accum"):
        load_config("tiny", ["training.grad_accum=3"]).validate()


def test_yaml_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hidden_size: 64\n   layers: [\n")
    with pytest.raises(ValueError, match=r"bad\.yaml:\d+"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="unknown preset 'huge'"):
        load_config("huge")
