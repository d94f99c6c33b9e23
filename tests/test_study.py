"""`bench study`: the real entry point end to end on a micro config, its resume, and its plans."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from bertin_bench.cli import main
from study.config import CONTROL, load_study
from study.layout import MARK as STAGE_FILE

TOKENS_PER_STEP = 4 * 128  # batch 4 x seq 128 below


def _micro_config(tmp_path, **benchmark) -> str:
    cfg = {
        "name": "micro",
        "work_dir": str(tmp_path / "work"),
        "results_dir": str(tmp_path / "results"),
        "corpus": {"input": "data:web_es/web_es_mix.jsonl.gz", "heldout_docs": 40, "limit": 600},
        "lm": {"model_dir": "data:kenlm_es", "mode": "lines"},
        "sampling": {"strategies": ["random", "gaussian"], "control": True, "target_fraction": 0.5,
                     "boundary_docs": 600, "tasks": 2, "workers": 1},
        "tokenizer": {"path": "data:tokenizers/bertin-roberta-base-spanish"},
        "pretraining": {
            "preset": "tiny",
            "overrides": ["model.hidden_size=32", "model.intermediate_size=64", "training.batch_size=4",
                          "schedule.warmup_steps=1", "logging.log_every=1", "logging.eval_every=2",
                          "checkpointing.every_steps=2", "data.eval_docs=20", "data.eval_blocks=4",
                          "logging.progress=false"],
            "train_tokens": 3 * TOKENS_PER_STEP,
        },
        "benchmark": {"tasks": ["ner_conll2002_es", "pawsx_es"], "seeds": 1, "limit_train": 24,
                      "limit_eval": 24, "overrides": {"epochs": 1}, **benchmark},
    }
    path = tmp_path / "micro.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return str(path)


def _marks(work):
    return {p.parent.relative_to(work).as_posix(): p.read_text() for p in sorted(work.rglob(STAGE_FILE))}


@pytest.mark.slow
def test_study_end_to_end_resumes_and_redoes_only_what_changed(tmp_path, web_sample, kenlm_dir, bertin_tokenizer_dir):
    from benchmark.results import iter_results

    config = _micro_config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["study", config], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    work, results = tmp_path / "work", tmp_path / "results"
    report = json.loads((results / "study.json").read_text())
    arms = ["random", "gaussian", CONTROL]

    # Every arm sampled the same 600 documents; the control kept them all.
    for arm in arms:
        assert report["samples"][arm]["seen"] == 600
    assert report["samples"][CONTROL]["kept"] == 600
    for arm in ("random", "gaussian"):
        assert abs(report["samples"][arm]["kept_fraction"] - 0.5) < 0.08

    # The common held-out documents are in no sample, and every arm evaluates on exactly them.
    import gzip

    heldout = work / "corpus" / "heldout.jsonl.gz"
    with gzip.open(heldout, "rt", encoding="utf-8") as f:
        heldout_texts = {json.loads(line)["text"] for line in f}
    assert len(heldout_texts) == 40
    for arm in arms:
        for shard in (work / "samples" / arm / "data").glob("*.jsonl.gz"):
            with gzip.open(shard, "rt", encoding="utf-8") as f:
                assert not heldout_texts & {json.loads(line)["text"] for line in f}
        saved = yaml.safe_load((work / "models" / arm / "run" / "config.yaml").read_text())
        assert saved["data"]["eval_files"] == [str(heldout)]

    # Equal token budgets: identical step counts and exactly the same number of training tokens.
    tokens = {arm: report["pretraining"][arm]["tokens_seen"] for arm in arms}
    assert set(tokens.values()) == {3 * TOKENS_PER_STEP}, tokens
    assert {report["pretraining"][arm]["steps"] for arm in arms} == {3}
    for arm in arms:
        meta = json.loads((work / "models" / arm / "hf" / "bertin_pretraining.json").read_text())
        assert meta["tokens_seen"] == 3 * TOKENS_PER_STEP

    # One valid result per model x task x seed, recording the pre-training tokens of our models.
    runs = list(iter_results(results))
    assert len(runs) == len(arms) * 2
    for _, res in runs:
        assert res.errors() == []
        assert res.model.pretraining_tokens == 3 * TOKENS_PER_STEP
        # BERTIN's tokenizer has no post-processor; the export attached RoBERTa's template
        assert res.model.added_post_processor is False
    board = (results / "leaderboard.md").read_text()
    for arm in arms:
        assert f"micro-{arm}" in board
    assert (results / "comparison" / "compare.md").is_file()
    for fig in report["figures"].values():
        assert (tmp_path / fig).is_file() or __import__("pathlib").Path(fig).is_file()
    assert "leaderboard" in result.output.lower() or "micro-random" in result.output
    assert any((work / "jax_cache").iterdir())  # compiled programs are kept for the next runs

    # Re-running does nothing: every stage mark and every result file is untouched.
    marks = _marks(work)
    stamps = {p: p.stat().st_mtime_ns for p in results.rglob("seed*.json")}
    again = runner.invoke(main, ["study", config], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert _marks(work) == marks
    assert {p: p.stat().st_mtime_ns for p in results.rglob("seed*.json")} == stamps

    # A benchmark-only change (a second seed) redoes no sampling or pre-training.
    more = runner.invoke(main, ["study", config, "benchmark.seeds=2"], catch_exceptions=False)
    assert more.exit_code == 0, more.output
    assert _marks(work) == marks
    assert len(list(iter_results(results))) == len(arms) * 2 * 2


def test_dry_run_prints_the_plan_with_token_budgets(data_dir):
    out = CliRunner().invoke(main, ["study", "base", "--dry-run"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "250,000 steps x 2048 sequences x 128 tokens" in out.output
    assert "65,536,000,000 tokens per arm" in out.output
    for arm in ("random", "stepwise", "gaussian"):
        assert f"pre-train {arm}" in out.output


@pytest.mark.parametrize("name", ["demo", "small", "base"])
def test_presets_validate(name, data_dir):
    cfg = load_study(name)
    assert cfg.sampling.strategies
    # The same pre-training config for every arm, except where the data comes from.
    from study.run import Study

    study = Study(cfg)
    first, *others = [study.pretrain_config(a).to_dict() for a in cfg.arms]
    for other in others:
        assert {k: v for k, v in other.items() if k not in ("name", "out_dir", "data")} == \
               {k: v for k, v in first.items() if k not in ("name", "out_dir", "data")}


def test_bad_study_configs_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling:\n  strategies: [random, typical]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="typical"):
        load_study(bad)
    bad.write_text("sampling:\n  strategy: random\n", encoding="utf-8")
    with pytest.raises(ValueError, match="sampling.strategy"):
        load_study(bad)
    with pytest.raises(FileNotFoundError, match="demo"):
        load_study("no-such-study")


def test_boundaries_and_samples_do_not_depend_on_the_task_count(tmp_path, web_sample, kenlm_dir):
    """Boundaries come from the corpus's first documents, not from the scored shards (whose
    contents depend on the task count), so each arm keeps the same documents with 1 or 3 tasks."""
    from study.run import Study
    from tests.sampling.util import read_shards

    kept, quartiles = {}, {}
    for tasks in (1, 3):
        root = tmp_path / f"t{tasks}"
        root.mkdir()
        cfg = load_study(_micro_config(root), [f"sampling.tasks={tasks}", "sampling.boundary_docs=250"])
        study = Study(cfg, echo=lambda *_: None)
        b = study.boundaries()
        quartiles[tasks] = (b.q1, b.q2, b.q3)
        study.sample("gaussian", b)
        kept[tasks] = {r["text"] for r in read_shards(cfg.work / "samples" / "gaussian")}
    assert quartiles[1] == quartiles[3]
    assert kept[1] == kept[3] and 150 < len(kept[1]) < 450  # ~half of 600


def test_pretrain_config_is_built_from_objects_not_strings(tmp_path, data_dir):
    """The study hands pre-training typed values: a work dir with a comma, a space and a '#' stays
    one path (as YAML override strings it became two paths, or a parse error)."""
    from study.run import Study

    odd = tmp_path / "a, b #c d"
    cfg = load_study(_micro_config(tmp_path), [])
    cfg.work_dir = str(odd / "work")
    study = Study(cfg)
    for arm in cfg.arms:
        pcfg = study.pretrain_config(arm)
        assert pcfg.data.train_files == [str(odd / "work" / "samples" / arm / "data")]
        assert pcfg.data.eval_files == [str(odd / "work" / "corpus" / "heldout.jsonl.gz")]
        assert pcfg.out_dir == str(odd / "work" / "models" / arm / "run")
        assert pcfg.training.max_tokens == cfg.pretraining.train_tokens
        assert pcfg.name == f"micro-{arm}"
    # the study's own overrides still reach the preset
    assert study.pretrain_config("random").model.hidden_size == 32
