"""Input specs (file, dir, glob, parquet, Hub id), byte-balanced sharding of one file, and the CLI surface."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bertin_bench.cli import main
from sampling.io import FlatReader, InputSpec, make_reader, parse_input
from tests.sampling.util import read_shards, sample, score


def test_hub_input_syntax():
    spec = parse_input("hf://allenai/c4:es")
    assert (spec.hf_dataset, spec.hf_config, spec.hf_split) == ("allenai/c4", "es", "train")
    assert parse_input("hf://user/ds@validation").hf_split == "validation"
    reader = make_reader(spec, text_key="text", limit=10)  # built, not run: no network in tests
    assert reader.dataset == "allenai/c4" and reader.dataset_options == {"split": "train", "name": "es"}
    assert reader.streaming and reader.limit == 10
    # records become flat documents: nothing added, nothing dropped silently
    doc = reader.get_document_from_dict({"text": "Hola", "url": "u"}, "allenai/c4", "00000/7")
    assert doc.text == "Hola" and doc.metadata == {"url": "u", "_where": "hf://allenai/c4:es@train:00000/7"}
    empty = reader.get_document_from_dict({"url": "u"}, "allenai/c4", "00000/8")
    assert empty.metadata["_skip"] == "missing_text"


def test_file_dir_glob_and_missing_inputs(web_slice, tmp_path):
    path = web_slice(50)
    assert parse_input(path).files == (str(path.resolve()),)
    assert str(path.resolve()) in parse_input(path.parent).files
    assert str(path.resolve()) in parse_input(str(path.parent / "web_*.jsonl")).files
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_input(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match="matches no file"):
        parse_input(str(tmp_path / "*.jsonl"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no input shards"):
        parse_input(tmp_path / "empty")


def test_one_file_is_split_across_tasks_by_bytes(web_slice):
    path = web_slice(101)
    spec = parse_input(path)
    sizes = {f"{path}:{i}": len(line.encode()) + 1 for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)}
    per_task = [[d.metadata["_where"] for d in FlatReader(spec).run(rank=r, world_size=3)] for r in range(3)]
    everything = [d.metadata["_where"] for d in FlatReader(spec).run(rank=0, world_size=1)]
    assert sorted(sum(per_task, [])) == sorted(everything) and len(set(everything)) == 101  # nothing lost or doubled
    # Each task gets about a third of the bytes: within one document of each other (greedy least-loaded).
    loads = [sum(sizes[w] for w in task) for task in per_task]
    assert max(loads) - min(loads) <= max(sizes.values())
    # The split is a function of the file alone: the same on every run.
    assert per_task == [[d.metadata["_where"] for d in FlatReader(spec).run(rank=r, world_size=3)] for r in range(3)]


def test_parquet_input_scores_like_jsonl(web_slice, ccnet_scorer, tmp_path):
    rows = [json.loads(line) for line in web_slice(60).read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "part.parquet")
    score(tmp_path / "part.parquet", tmp_path / "pq", scorer=ccnet_scorer)
    score(web_slice(60), tmp_path / "js", scorer=ccnet_scorer)
    assert read_shards(tmp_path / "pq") == read_shards(tmp_path / "js")


def test_hub_reader_streams_like_the_flat_reader(web_slice, ccnet_scorer, tmp_path):
    """The hf:// path (datatrove's Hub reader, `datasets` streaming) run on a local dataset directory,
    since the Hub itself cannot be reached here: same records, same kept set, 1 or 2 tasks."""
    lines = web_slice(200).read_text(encoding="utf-8").splitlines(keepends=True)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "part-0.jsonl").write_text("".join(lines[:120]), encoding="utf-8")  # 2 files: 2 stream shards
    (dataset / "part-1.jsonl").write_text("".join(lines[120:]), encoding="utf-8")
    common = dict(strategy="random", factor=0.5, scorer=ccnet_scorer, seed=1)
    hub = InputSpec(hf_dataset=str(dataset))
    runs = {"flat": sample(dataset, tmp_path / "flat", **common),
            "hub1": sample(hub, tmp_path / "hub1", **common),
            "hub2": sample(hub, tmp_path / "hub2", tasks=2, workers=2, **common)}
    records = {name: sorted(read_shards(tmp_path / name), key=lambda r: r["text"]) for name in runs}
    # `datasets` types the JSON: "2022-03-08T16:05:33Z" comes back as a datetime (pyarrow converts
    # zoned times to UTC and drops the zone), written in RFC 3339 without the "Z" (docs/sampling.md).
    assert all(r["timestamp"].endswith("Z") for r in records["flat"])
    for r in records["flat"]:
        r["timestamp"] = r["timestamp"].removesuffix("Z")
    assert records["flat"] == records["hub1"] == records["hub2"]
    assert 70 < len(records["flat"]) < 130 and all(s["seen"] == 200 for s in runs.values())
    # 2 tasks, 2 files: datatrove gives each task one stream shard, so both shards hold documents
    shards = sorted((tmp_path / "hub2" / "data").glob("*.jsonl.gz"))
    assert [p.name for p in shards] == ["00000.jsonl.gz", "00001.jsonl.gz"]
    assert all(gzip.decompress(p.read_bytes()).count(b"\n") > 0 for p in shards)


def test_every_command_has_help_with_examples():
    runner = CliRunner()
    res = runner.invoke(main, ["sample", "--help"])
    assert res.exit_code == 0 and all(c in res.output for c in ("score", "boundaries", "run", "stats"))
    for cmd in ("score", "boundaries", "run", "stats"):
        res = runner.invoke(main, ["sample", cmd, "--help"])
        assert res.exit_code == 0 and "Examples:" in res.output and "bench sample" in res.output, cmd


def test_cli_boundaries_then_run_uses_the_boundaries_mode(web_slice, kenlm_dir, tmp_path):
    runner = CliRunner()
    path = web_slice(300)
    res = runner.invoke(main, ["sample", "boundaries", "-i", str(path), "-o", str(tmp_path / "b.json"),
                               "--lm-dir", str(kenlm_dir), "--mode", "ccnet", "--n-docs", "300"])
    assert res.exit_code == 0, res.output
    assert "on 300 docs (ccnet mode)" in res.output
    res = runner.invoke(main, ["sample", "run", "-i", str(path), "-o", str(tmp_path / "o"), "--lm-dir", str(kenlm_dir),
                               "--strategy", "stepwise", "--boundaries", str(tmp_path / "b.json"),
                               "--target-fraction", "0.5", "--tasks", "2"])
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["scorer"]["mode"] == "ccnet" and stats["strategy"]["name"] == "stepwise"
    assert f"kept {stats['kept']:,}" in res.output
    res = runner.invoke(main, ["sample", "stats", str(tmp_path / "o")])  # rebuild from per-task files
    assert res.exit_code == 0 and json.loads((tmp_path / "o" / "stats.json").read_text())["kept"] == stats["kept"]


def test_executor_is_built_from_the_options(tmp_path):
    from bertin_bench.executor import ExecutorOptions
    from sampling.executors import completion_view, make_executor

    slurm = ExecutorOptions(kind="slurm", tasks=2, slurm_partition="cpu", slurm_time="01:00:00", cpus_per_task=3,
                            slurm_job_name="bench-sample-x")
    exe = make_executor([], slurm, logging_dir=str(tmp_path / "logs"))
    assert type(exe).__name__ == "SlurmPipelineExecutor" and exe.world_size == 2  # built, not submitted
    assert (exe.partition, exe.time, exe.cpus_per_task, exe.job_name) == ("cpu", "01:00:00", 3, "bench-sample-x")
    local = make_executor([], ExecutorOptions(tasks=3, workers=2), logging_dir=str(tmp_path / "logs"))
    assert (local.world_size, local.workers) == (3, 2)
    # completions are the executor's answer, whichever executor ran the tasks
    (tmp_path / "logs" / "completions").mkdir(parents=True)
    (tmp_path / "logs" / "completions" / "00001").touch()
    assert completion_view(str(tmp_path / "logs"), tasks=3).get_incomplete_ranks() == [0, 2]
    assert exe.get_incomplete_ranks() == [0]


def test_strict_error_surfaces_from_worker_processes(web_slice, ccnet_scorer, tmp_path):
    from sampling.options import SampleError

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(web_slice(30).read_bytes() + b'{"text": null}\n')
    with pytest.raises(SampleError, match=rf"{bad}:31: missing_text"):
        score(bad, tmp_path / "o", scorer=ccnet_scorer, tasks=2, workers=2, strict=True)
    assert not (tmp_path / "o" / "stats.json").exists()


def test_stats_on_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "somedir").mkdir()
    res = CliRunner().invoke(main, ["sample", "stats", str(tmp_path / "somedir")])
    assert res.exit_code == 1 and res.exception.__class__ is SystemExit
    assert f"{tmp_path / 'somedir'} is not the output of `bench sample score` or `bench sample run`" in res.output
    assert not (tmp_path / "somedir" / ".bench.lock").exists()  # nothing written into it


def test_rejects_on_a_rerun_of_a_finished_run_says_they_were_not_written(web_slice, kenlm_dir, tmp_path, caplog):
    path = tmp_path / "with_bad.jsonl"
    path.write_bytes(web_slice(30).read_bytes() + b'{"text": "roto\n')
    args = ["sample", "score", "-i", str(path), "-o", str(tmp_path / "o"), "--lm-dir", str(kenlm_dir)]
    assert CliRunner().invoke(main, args).exit_code == 0
    with caplog.at_level("WARNING"):
        res = CliRunner().invoke(main, [*args, "--rejects"])
    assert res.exit_code == 0
    assert "--rejects: 1 of 1 tasks were already complete from a run without --rejects" in caplog.text
    assert not (tmp_path / "o" / "rejects").exists()
    caplog.clear()  # a run that had --rejects from the start: no warning on its rerun
    first = CliRunner().invoke(main, ["sample", "score", "-i", str(path), "-o", str(tmp_path / "r"), "--lm-dir",
                                      str(kenlm_dir), "--rejects"])
    assert first.exit_code == 0 and len(read_shards(tmp_path / "r", "rejects")) == 1
    with caplog.at_level("WARNING"):
        CliRunner().invoke(main, ["sample", "score", "-i", str(path), "-o", str(tmp_path / "r"), "--lm-dir",
                                  str(kenlm_dir), "--rejects"])
    assert "--rejects" not in caplog.text


def test_an_input_without_the_text_field_names_its_fields(web_slice, lines_scorer, tmp_path):
    from sampling.options import SampleError

    records = [json.loads(line) for line in web_slice(20).read_text(encoding="utf-8").splitlines()]
    path = tmp_path / "body.jsonl"
    path.write_text("".join(json.dumps({"body": r.pop("text"), **r}) + "\n" for r in records), encoding="utf-8")
    with pytest.raises(SampleError, match=r"no record has the text field 'text' \(20 records without it\); the "
                                          r"records have the fields body, source, timestamp, url: pass --text-key"):
        score(path, tmp_path / "o", scorer=lines_scorer)
    assert score(path, tmp_path / "ok", scorer=lines_scorer, text_key="body")["seen"] == 20
