"""`bench study`: the real entry point end to end on a micro config, its resume, and its plans."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from bertin_bench.cli import main
from pretraining.config import load_config
from study.config import CONTROL, FLOOR, load_study
from study.layout import MARK as STAGE_FILE

TOKENS_PER_STEP = 4 * 128  # batch 4 x seq 128 below


def _micro_config(tmp_path, **benchmark) -> str:
    cfg = {
        "name": "micro",
        "work_dir": str(tmp_path / "work"),
        "results_dir": str(tmp_path / "results"),
        "corpus": {"input": "data:web_es/web_es_mix.jsonl.gz", "heldout_per_source": 5, "limit": 600},
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
            "seeds": 2,
            "floor": True,
        },
        "evaluation": {"wiki_docs": 20, "max_blocks_per_doc": 1, "batch_size": 16},
        "nboot": 200,
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
    sampled = ["random", "gaussian", CONTROL]
    arms = [*sampled, FLOOR]
    units = [(arm, seed) for arm in arms for seed in (0, 1)]

    # Every sampled arm sampled the same 600 documents; the control kept them all.
    for arm in sampled:
        assert report["samples"][arm]["seen"] == 600
    assert report["samples"][CONTROL]["kept"] == 600
    for arm in ("random", "gaussian"):
        assert abs(report["samples"][arm]["kept_fraction"] - 0.5) < 0.08

    # The held-out documents (5 of each of the 7 sources) are in no sample, and every model
    # evaluates on exactly them.
    import gzip

    heldout = work / "corpus" / "heldout.jsonl.gz"
    with gzip.open(heldout, "rt", encoding="utf-8") as f:
        held = [json.loads(line) for line in f]
    assert len(held) == 35 and {sum(r["source"] == s for r in held) for s in {r["source"] for r in held}} == {5}
    heldout_texts = {r["text"] for r in held}
    for arm in sampled:
        for shard in (work / "samples" / arm / "data").glob("*.jsonl.gz"):
            with gzip.open(shard, "rt", encoding="utf-8") as f:
                assert not heldout_texts & {json.loads(line)["text"] for line in f}
        saved = yaml.safe_load((work / "models" / arm / "s0" / "run" / "config.yaml").read_text())
        assert saved["data"]["eval_files"] == [str(heldout)]

    # Equal token budgets: identical step counts and exactly the same number of training tokens;
    # a seed changes the initialisation and the data order, not the budget.
    trained = [f"{arm}-s{seed}" for arm in sampled for seed in (0, 1)]
    assert {report["pretraining"][u]["tokens_seen"] for u in trained} == {3 * TOKENS_PER_STEP}
    assert {report["pretraining"][u]["steps"] for u in trained} == {3}
    for arm in sampled:
        metas = [json.loads((work / "models" / arm / f"s{seed}" / "hf" / "bertin_pretraining.json").read_text())
                 for seed in (0, 1)]
        assert [m["config"]["training"]["seed"] for m in metas] == [0, 1]
        assert {m["tokens_seen"] for m in metas} == {3 * TOKENS_PER_STEP}
    # the floor: the same architecture and seeds, never trained
    assert {report["pretraining"][f"{FLOOR}-s{seed}"]["tokens_seen"] for seed in (0, 1)} == {0}

    # One valid result per model x task x fine-tuning seed.
    runs = list(iter_results(results))
    assert len(runs) == len(units) * 2
    for _, res in runs:
        assert res.errors() == []
        assert res.model.pretraining_tokens == (0 if f"-{FLOOR}-" in res.model.name else 3 * TOKENS_PER_STEP)
        # BERTIN's tokenizer has no post-processor; the export attached RoBERTa's template
        assert res.model.added_post_processor is False
    board = (results / "leaderboard.md").read_text()
    for arm, seed in units:
        assert f"micro-{arm}-s{seed}" in board
    assert "## Task signal" in board

    # The comparison: Multi-Bootstrap over 2 pre-training seeds against the reference and the floor.
    import pandas as pd

    table = pd.read_csv(results / "comparison" / "compare.csv")
    assert set(table["arm"]) == set(arms)
    assert (table["pretrain_seeds"] == 2).all()
    other = table[table["arm"] != "random"]
    assert other["p"].between(0, 1).all() and other["p_holm_study"].between(0, 1).all()
    assert (other["p_holm_study"] >= other["p"]).all()
    evidence = (results / "evidence.md").read_text()
    assert "Multi-Bootstrap" in evidence and "Domains" in evidence and "Task signal" in evidence

    # Per-domain evaluation: every model x every source (7 web sources + Wikipedia).
    by_source = pd.read_csv(results / "heldout_by_source.csv")
    assert len(by_source) == len(units) * 8
    assert set(by_source["source"]) == {r["source"] for r in held} | {"wikipedia"}
    assert (by_source.groupby("source")["tokens"].nunique() == 1).all()  # same masks for every model
    untrained = by_source[by_source["arm"] == FLOOR]["loss"].mean()
    assert untrained > by_source[by_source["arm"] != FLOOR]["loss"].mean()  # 3 steps already help
    domains = pd.read_csv(results / "comparison" / "domains.csv")
    assert set(domains["source"]) == set(by_source["source"])

    for fig in report["figures"].values():
        assert (tmp_path / fig).is_file() or __import__("pathlib").Path(fig).is_file()
    assert any((work / "jax_cache").iterdir())  # compiled programs are kept for the next runs

    # Re-running does nothing: every stage mark and every result file is untouched.
    marks = _marks(work)
    stamps = {p: p.stat().st_mtime_ns for p in results.rglob("seed*.json")}
    again = runner.invoke(main, ["study", config], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert _marks(work) == marks
    assert {p: p.stat().st_mtime_ns for p in results.rglob("seed*.json")} == stamps

    # A benchmark-only change (a second fine-tuning seed) redoes no sampling, pre-training or evaluation.
    more = runner.invoke(main, ["study", config, "benchmark.seeds=2"], catch_exceptions=False)
    assert more.exit_code == 0, more.output
    assert _marks(work) == marks
    assert len(list(iter_results(results))) == len(units) * 2 * 2


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
    seed = cfg.pretraining.seed_list[0]
    first, *others = [study.pretrain_config(a, seed).to_dict() for a in cfg.arms]
    # a BPE the study trains sizes the embedding (small: 16k, not the preset's 50,265)
    want = cfg.tokenizer.vocab_size if not cfg.tokenizer.path else load_config(cfg.pretraining.preset).model.vocab_size
    assert first["model"]["vocab_size"] == want
    for other in others:
        assert {k: v for k, v in other.items() if k not in ("name", "out_dir", "data")} == \
               {k: v for k, v in first.items() if k not in ("name", "out_dir", "data")}
    # a seed changes the initialisation, the masking and the data order, nothing else
    if len(cfg.pretraining.seed_list) > 1:
        a, b = (study.pretrain_config(cfg.arms[0], s).to_dict() for s in cfg.pretraining.seed_list[:2])
        assert a["training"]["seed"] != b["training"]["seed"] and a["data"]["seed"] != b["data"]["seed"]
        assert {k: v for k, v in a["model"].items()} == b["model"]


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
    for arm in cfg.sampled_arms:
        pcfg = study.pretrain_config(arm, 1)
        assert pcfg.data.train_files == [str(odd / "work" / "samples" / arm / "data")]
        assert pcfg.data.eval_files == [str(odd / "work" / "corpus" / "heldout.jsonl.gz")]
        assert pcfg.out_dir == str(odd / "work" / "models" / arm / "s1" / "run")
        assert pcfg.training.max_tokens == cfg.pretraining.train_tokens
        assert pcfg.name == f"micro-{arm}-s1"
    # the study's own overrides still reach the preset
    assert study.pretrain_config("random", 0).model.hidden_size == 32


@pytest.mark.slow
def test_units_on_two_local_workers_give_the_serial_study(tmp_path, web_sample, kenlm_dir, bertin_tokenizer_dir):
    """`bench study --workers 2`: each pre-training (arm, seed) and each fine-tuning run is its own
    process on its own core (bertin_bench.units), and the study ends with the models, result files
    and report of the serial study. A rerun dispatches nothing."""
    from benchmark.results import iter_results

    small = ["sampling.strategies=[random]", "sampling.control=false", "benchmark.tasks=[ner_conll2002_es]"]
    runner, out = CliRunner(), {}
    for mode, flags in (("serial", []), ("workers", ["--workers", "2"])):
        root = tmp_path / mode
        root.mkdir()
        said = runner.invoke(main, ["study", _micro_config(root), *small, *flags], catch_exceptions=False)
        assert said.exit_code == 0, said.output
        out[mode] = root, said.output
    (serial, _), (dispatched, said) = out["serial"], out["workers"]
    assert "2 pre-training unit(s) on the local executor, 2 at a time" in said  # random s0, s1 (the floor is an export)
    assert "4 unit(s) on the local executor, 2 at a time" in said  # 4 models x 1 task x 1 seed
    assert not (dispatched / "work" / ".executor").exists() and not (dispatched / "results" / ".executor").exists()

    def models(root):
        report = json.loads((root / "results" / "study.json").read_text())
        return {u: (p["steps"], p["tokens_seen"]) for u, p in report["pretraining"].items()}

    assert models(dispatched) == models(serial) and len(models(serial)) == 4
    for arm, seed in (("random", 0), ("random", 1)):
        losses = [[json.loads(line).get("loss") for line in (root / "work" / "models" / arm / f"s{seed}" / "run" /
                                                              "metrics.jsonl").read_text().splitlines()]
                  for root in (serial, dispatched)]
        assert [x for x in losses[0] if x] == pytest.approx([x for x in losses[1] if x], rel=1e-5)
    runs = {mode: {(r.model.name, r.task.name, r.seed): r for _, r in iter_results(root / "results")}
            for mode, root in (("serial", serial), ("workers", dispatched))}
    assert runs["serial"].keys() == runs["workers"].keys() and len(runs["serial"]) == 4
    # A trained model is the same up to float rounding (a unit runs XLA on 1 core, the serial study
    # on 2: reductions split differently), so its weights' hash differs; a floor (exported in the
    # command either way) is bit-identical. Fine-tuning rounds the same way, hence the tolerance.
    for key, want in runs["serial"].items():
        got = runs["workers"][key]
        assert got.main_score == pytest.approx(want.main_score, abs=0.01)
        if f"-{FLOOR}-" in key[0]:
            assert got.model.content_hash == want.model.content_hash
    by_source = [pd_read(root / "results" / "heldout_by_source.csv") for root in (serial, dispatched)]
    assert by_source[0]["loss"].tolist() == pytest.approx(by_source[1]["loss"].tolist(), rel=1e-4)

    stamps = {p: p.stat().st_mtime_ns for p in (dispatched / "results").rglob("seed*.json")}
    again = runner.invoke(main, ["study", _micro_config(dispatched), *small, "--workers", "2"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "pre-training unit(s)" not in again.output and "unit(s) on the local executor" not in again.output
    assert {p: p.stat().st_mtime_ns for p in (dispatched / "results").rglob("seed*.json")} == stamps


def pd_read(path):
    import pandas as pd

    return pd.read_csv(path)
