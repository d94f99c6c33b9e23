"""The result object on the committed result files: loading old versions, round trips, validation,
the resume key, and the schema document generated from the declarations."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from benchmark import results, schema_doc
from benchmark.tasks import get_task

ROOT = Path(__file__).parents[2]
COMMITTED = sorted((ROOT / "results" / "studies").glob("*/runs/*/*/seed*.json"))
# Files written before schema 2: one model of the earlier small study, as it was published (commit
# 7b7435f), kept here when the study was redone. What the v1 -> v2 converter is tested on.
SCHEMA_1 = sorted((Path(__file__).parent / "fixtures" / "schema1").glob("*/*/seed*.json"))


def test_result_files_exist_in_both_schemas():
    # The converter below is only tested if old files are really there.
    assert len(SCHEMA_1) >= 12
    assert {json.loads(p.read_text())["schema_version"] for p in SCHEMA_1} == {1}
    assert len(COMMITTED) >= 30
    assert {json.loads(p.read_text())["schema_version"] for p in COMMITTED} == {results.SCHEMA_VERSION}


@pytest.mark.parametrize("path", [p for p in COMMITTED if p not in SCHEMA_1], ids=lambda p: "/".join(p.parts[-5:]))
def test_committed_current_result_round_trips(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    res = results.FinetuneResult.from_disk(path)
    assert res.errors() == [] and res.to_dict() == raw


@pytest.mark.parametrize("path", SCHEMA_1, ids=lambda p: "/".join(p.parts[-5:]))
def test_committed_result_loads_upgrades_and_round_trips(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    res = results.FinetuneResult.from_disk(path)
    assert res.schema_version == results.SCHEMA_VERSION and res.errors() == []
    # v1 -> v2: the new task fields are filled, everything else is kept, key order included.
    assert res.task.file_overrides == {} and res.task.hub_revision is None
    out = res.to_dict()
    assert json.dumps({**out, "schema_version": 1, "task": {k: v for k, v in out["task"].items()
                                                         if k not in ("hub_revision", "file_overrides")}}) == json.dumps(raw)
    assert res.main_score == raw["main_score"] and res.model.content_hash == raw["model"]["content_hash"]
    assert results.FinetuneResult.from_dict(out).to_dict() == out


def test_saving_validates_and_is_read_back_identically(tmp_path):
    res = results.FinetuneResult.from_disk(SCHEMA_1[0])
    path = res.to_disk(tmp_path / "runs" / "m" / "t" / "seed0.json")
    again = results.FinetuneResult.from_disk(path)
    assert again == res and json.loads(path.read_text())["schema_version"] == results.SCHEMA_VERSION
    res.best_epoch = 99
    with pytest.raises(ValueError, match="refusing to write an invalid result.*best_epoch: outside the epochs run"):
        res.to_disk(tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_validation_names_the_field_and_the_file(tmp_path):
    raw = json.loads(SCHEMA_1[0].read_text())
    bad = results.upgrade(raw)
    del bad["model"]["content_hash"]
    bad["task"]["labels"] = ["O", 3]
    bad["seed"] = True
    bad["timing"]["extra"] = 1
    errors = results.validate_result(bad)
    assert "result.model.content_hash: missing" in errors
    assert "result.task.labels[1]: expected str, got int" in errors
    assert "result.seed: expected int, got bool" in errors
    assert "result.timing.extra: unknown key (not in the schema)" in errors
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps({**raw, "schema_version": 9}))
    with pytest.raises(ValueError, match=r"seed0.json: schema_version 9 is newer"):
        results.FinetuneResult.from_disk(path)
    path.write_text(json.dumps({**raw, "kind": "something-else"}))
    with pytest.raises(ValueError, match=r"seed0.json: not a bertin-bench/finetune-result file"):
        results.FinetuneResult.from_disk(path)


def test_v1_hub_result_takes_its_recorded_revision():
    raw = json.loads(SCHEMA_1[0].read_text())
    raw["task"]["data"] = {"hub": {"id": "x/y", "config": "es", "revision": "abc123"}}
    assert results.upgrade(raw)["task"]["hub_revision"] == "abc123"
    assert "hub_revision" not in raw["task"]  # the input is not modified


def test_committed_demo_results_are_up_to_date_for_the_demo_settings():
    """`bench study demo` on a clean clone must skip these runs: the key the runner builds for the
    demo's settings equals the key read from each committed file (model content as recorded)."""
    bench = yaml.safe_load((ROOT / "configs/study/demo.yaml").read_text())["benchmark"]
    demo = [p for p in COMMITTED if "/demo/" in p.as_posix()]
    assert demo
    for path in demo:
        res = results.FinetuneResult.from_disk(path)
        spec = get_task(res.task.name)
        model = SimpleNamespace(content_hash=res.model.content_hash, hub_id=None, revision=None,
                                requested_revision=None)
        wanted = results.RunKey.for_run(model, spec, spec.hyperparameters(bench["overrides"]),
                                        (bench["limit_train"], bench["limit_eval"]))
        assert res.run_key().differences(wanted) == [], path
        changed = results.RunKey.for_run(model, spec, spec.hyperparameters({**bench["overrides"], "epochs": 1}),
                                         (bench["limit_train"], bench["limit_eval"]), {"train": "other.txt"})
        assert res.run_key().differences(changed) == ["hyperparameters", "data files"]


def test_setting_key_and_slug():
    res = results.FinetuneResult.from_disk(Path(__file__).parent / "fixtures/schema1/small-random/pawsx_es/seed0.json")
    assert res.setting_key == "pawsx_es@1 dev-train limit(train=1000,eval=500)"
    assert results.slug("bertin-project/bertin-base-gaussian") == "bertin-project--bertin-base-gaussian"
    with pytest.raises(ValueError, match="cannot make a file name"):
        results.slug("//")


def test_committed_schema_document_is_the_generated_one():
    committed = schema_doc.SCHEMA_DOC.read_text(encoding="utf-8")
    assert committed == schema_doc.schema_markdown(), "benchmark/RESULTS_SCHEMA.md is stale: run python -m benchmark.schema_doc"
    # Every declared field has a row: the document cannot skip one.
    for key, _, _ in results._rows(results.FinetuneResult):
        assert f"| `{key}` |" in committed
    assert "| `task.hub_revision` | str or null |" in committed and "| `main_score` | number |" in committed
