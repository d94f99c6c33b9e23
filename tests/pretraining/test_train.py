"""End to end on real shards: train, kill, resume (same trajectory), export, phase 2, bad input."""

import json
import os

import flax.serialization
import numpy as np
import pytest
from click.testing import CliRunner

from bertin_bench.cli import main as bench
from bertin_bench.exports import EXPORT_INFO
from pretraining.checkpoint import export_hf, latest_checkpoint, list_checkpoints
from pretraining.plots import loss_rows
from pretraining.train import NonFiniteLossError, read_metrics, train

from .helpers import tiny_config, tiny_overrides

pytestmark = pytest.mark.slow

STEPS, BATCH, SEQ = 12, 8, 64


@pytest.fixture(scope="module")
def reference_run(shards, tmp_path_factory):
    """An uninterrupted 12-step run (checkpoints every 4, keep 2) with its own trained BPE."""
    run = tmp_path_factory.mktemp("ref") / "run"
    summary = train(tiny_config(shards, run, None))
    return run, summary


def _by_step(records, key):
    return {r["step"]: r[key] for r in records if key in r}


def test_killed_and_resumed_run_follows_the_same_trajectory(reference_run, shards, tmp_path):
    ref_dir, ref = reference_run
    assert ref["steps"] == STEPS and ref["tokens_seen"] == STEPS * BATCH * SEQ  # full blocks, no padding
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # "killed" after step 6: the last checkpoint is step 4
        train(tiny_config(shards, run, None), interrupt_at_step=6)
    assert [s for s, _ in list_checkpoints(run)] == [4]
    # Resume through the real entry point.
    result = CliRunner().invoke(bench, ["pretrain", "--config", "tiny", "--resume", *tiny_overrides(shards, run, None)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["steps"] == STEPS and summary["tokens_seen"] == ref["tokens_seen"]

    a, b = read_metrics(ref_dir), read_metrics(run)
    # Every step logged once (the killed run's steps 5-6 were dropped from the log on resume).
    assert [r["step"] for r in b if "loss" in r] == list(range(1, STEPS + 1))
    # Same data, masks, dropout and state: the trajectory is reproduced (tolerance 1e-6 relative;
    # on CPU it is bit-identical).
    np.testing.assert_allclose(list(_by_step(b, "loss").values()), list(_by_step(a, "loss").values()), rtol=1e-6)
    np.testing.assert_allclose(list(_by_step(b, "eval_loss").values()), list(_by_step(a, "eval_loss").values()),
                               rtol=1e-6)
    pa = flax.serialization.msgpack_restore((latest_checkpoint(ref_dir) / "state.msgpack").read_bytes())["params"]
    pb = flax.serialization.msgpack_restore((latest_checkpoint(run) / "state.msgpack").read_bytes())["params"]
    for x, y in zip(_leaves(pa), _leaves(pb)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    # keep_last=2, and the metadata knows where the data stream is.
    assert [s for s, _ in list_checkpoints(run)] == [8, 12]
    meta = json.loads((latest_checkpoint(run) / "metadata.json").read_text())
    assert set(meta["data_position"]) == {"epoch", "file_pos", "line", "block"} and meta["seq_len"] == SEQ


def _leaves(tree):
    import jax

    return jax.tree_util.tree_leaves(tree)


def test_held_out_loss_falls_and_the_run_is_logged(reference_run):
    run, summary = reference_run
    evals = _by_step(read_metrics(run), "eval_loss")
    assert sorted(evals) == [0, 4, 8, 12]
    assert evals[0] > evals[4] > evals[8] > evals[12], evals
    assert evals[12] < evals[0] - 0.1, evals
    assert summary["final_eval_loss"] == pytest.approx(evals[12])
    assert (run / "loss_curve.png").stat().st_size > 1000
    assert (latest_checkpoint(run) / "config.yaml").exists()
    # The series the figures draw: every training step's loss, and the evaluations.
    rows = loss_rows(run)
    assert [s for s, _ in rows.train] == list(range(1, STEPS + 1)) and dict(rows.eval) == evals
    assert loss_rows(run / "checkpoints") is None  # no metrics.jsonl there


def test_export_loads_in_transformers(reference_run, tmp_path):
    from transformers import FlaxAutoModelForMaskedLM, FlaxAutoModelForTokenClassification

    run, summary = reference_run
    out = export_hf(latest_checkpoint(run), tmp_path / "hf")
    model = FlaxAutoModelForMaskedLM.from_pretrained(out)
    ids = np.array([[0, 100, 200, 2]])
    assert model(ids).logits.shape == (1, 4, 1000)
    assert FlaxAutoModelForTokenClassification.from_pretrained(out, num_labels=9).config.num_labels == 9
    info = json.loads((out / EXPORT_INFO).read_text())
    assert info["steps"] == STEPS and info["tokens_seen"] == summary["tokens_seen"] and info["seq_len"] == SEQ
    assert info["config"]["model"]["hidden_size"] == 32 and len(info["data"]["sha256"]) == 3
    assert {"tokenizer", "provenance"} <= set(info)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)  # encodes <s> ... </s> like any RoBERTa tokenizer
    ids = tok("hola mundo").input_ids
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and len(ids) > 2
    # Same checkpoint again: a no-op; another directory in the way: an error, nothing overwritten.
    assert export_hf(run, out) == out
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        export_hf(run, tmp_path / "taken")


def test_refuses_to_overwrite_or_resume_another_config(reference_run, shards):
    run, _ = reference_run
    before = sorted(os.listdir(run / "checkpoints"))
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config(shards, run, None))
    with pytest.raises(ValueError, match="another config"):
        train(tiny_config(shards, run, None, "model.num_hidden_layers=3"), resume=True)
    assert sorted(os.listdir(run / "checkpoints")) == before


def test_phase_two_at_longer_sequences_keeps_the_optimizer(reference_run, shards, tmp_path):
    run, _ = reference_run
    ckpt = latest_checkpoint(run)
    out = tmp_path / "phase2"
    summary = train(tiny_config(shards, out, str(ckpt / "tokenizer"), "training.seq_len=128",
                                "training.max_steps=2", "model.vocab_size=1000", f"training.init_from={ckpt}",
                                "training.reset_optimizer=false", "schedule.warmup_steps=0", "data.eval_docs=0"))
    assert summary["tokens_seen"] == 2 * BATCH * 128
    state = flax.serialization.msgpack_restore((latest_checkpoint(out) / "state.msgpack").read_bytes())
    counts = {int(v) for k, v in _flatten(state["opt_state"]) if k.endswith("count")}
    assert counts == {STEPS + 2}  # Adam's step count (and so the bias correction) continued
    assert int(state["step"]) == 2


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}/{k}")
    else:
        yield prefix, tree


def test_non_finite_loss_stops_naming_the_step(shards, small_bpe, tmp_path):
    run = tmp_path / "nan"
    cfg = tiny_config(shards, run, str(small_bpe), "model.vocab_size=1000", "optimizer.learning_rate=1e30",
                      "schedule.warmup_steps=0", "checkpointing.every_steps=1", "training.max_steps=6", "data.eval_docs=0")
    with pytest.raises(NonFiniteLossError, match=r"at step (\d+).*last good checkpoint is .*step_0+1\b"):
        train(cfg)
    assert [s for s, _ in list_checkpoints(run)] == [1]


def test_missing_and_empty_shards_are_clear_errors(tmp_path, small_bpe):
    with pytest.raises(FileNotFoundError, match="not found"):
        train(tiny_config(tmp_path / "nowhere", tmp_path / "r1", str(small_bpe), "model.vocab_size=1000"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "00000.jsonl.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="00000.jsonl.gz"):
        train(tiny_config(empty, tmp_path / "r2", str(small_bpe), "model.vocab_size=1000"))
