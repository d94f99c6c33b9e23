"""Bad input: every kind is either a counted skip (reason in stats.json, record in rejects with
file:line) or, with strict, an error naming file and line. Never a silent wrong number."""

from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner

from bertin_bench.cli import main
from sampling.boundaries import estimate_boundaries
from sampling.options import SampleError
from tests.sampling.util import read_lines, read_shards, sample, score

BAD = [
    (b'{"text": "roto', "malformed_json"),
    (b'{"text": "caf\xe9 con leche"}', "invalid_utf8"),
    (b'{"url": "http://x.es"}', "missing_text"),
    (b'{"text": 42, "url": "http://y.es"}', "non_string_text"),
    (b'{"text": "   \\n  "}', "empty"),
    (b'{"text": "' + b"palabra " * 1_250_000 + b'"}', "too_long"),  # a 10 MB document
    (b"", "blank_line"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'{"text": "\\u0001\\u0002\\u0003"}', "unscorable"),  # nothing left after normalization (lines mode)
]


@pytest.fixture(scope="module")
def messy(web_sample, tmp_path_factory):
    """40 real documents with one bad record of each kind spliced in; returns (path, {line: reason})."""
    good = read_lines(web_sample, 40)
    lines, where = [], {}
    for i, doc in enumerate(good):
        lines.append(doc.rstrip(b"\n"))
        if i % 4 == 1 and BAD[len(where):]:
            raw, reason = BAD[len(where)]
            lines.append(raw)
            where[len(lines)] = reason
    path = tmp_path_factory.mktemp("messy") / "messy.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert len(where) == len(BAD)
    return path, where


def test_bad_records_are_counted_and_rejected_with_file_and_line(messy, lines_scorer, tmp_path):
    path, where = messy
    stats = score(path, tmp_path / "o", scorer=lines_scorer, rejects=True, tasks=2)
    assert stats["skipped"] == {reason: 1 for reason in where.values()}
    assert stats["seen"] == 40 and stats["records"] == 40 + len(BAD) and stats["kept"] == 40
    assert len(read_shards(tmp_path / "o")) == 40
    rejects = read_shards(tmp_path / "o", "rejects")
    got = {int(r["where"].rsplit(":", 1)[1]): r["skip_reason"] for r in rejects}
    assert got == where
    assert all(r["where"].startswith(str(path)) for r in rejects)
    non_string = next(r for r in rejects if r["skip_reason"] == "non_string_text")
    assert non_string["record"]["url"] == "http://y.es" and "int" in non_string["detail"]
    persisted = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert persisted["skipped"] == stats["skipped"] and persisted["skipped_total"] == len(BAD)


def test_strict_turns_the_first_bad_record_into_an_error(messy, lines_scorer, tmp_path):
    path, where = messy
    first = min(where)
    with pytest.raises(SampleError, match=rf"{path}:{first}: malformed_json: invalid JSON"):
        score(path, tmp_path / "o", scorer=lines_scorer, strict=True)


def test_strict_on_the_cli_exits_nonzero_naming_the_line(messy, kenlm_dir, tmp_path):
    path, where = messy
    res = CliRunner().invoke(main, ["sample", "score", "-i", str(path), "-o", str(tmp_path / "o"),
                                    "--lm-dir", str(kenlm_dir), "--strict"])
    assert res.exit_code == 1
    assert f"{path}:{min(where)}: malformed_json" in res.output


def test_too_long_limit_is_configurable(messy, lines_scorer, tmp_path):
    path, _ = messy
    stats = score(path, tmp_path / "o", scorer=lines_scorer, max_chars=0)  # 0: no limit
    assert "too_long" not in stats["skipped"] and stats["seen"] == 41


def test_boundaries_skip_bad_records_and_count_them(messy, lines_scorer):
    path, where = messy
    b = estimate_boundaries(path, scorer=lines_scorer, n_docs=1000, progress=False)
    assert b.n == 40
    assert b.skipped == {reason: 1 for reason in where.values()}


def test_missing_lm_and_foreign_boundaries(messy, kenlm_dir, ccnet_scorer, lines_scorer, tmp_path):
    path, _ = messy
    res = CliRunner().invoke(main, ["sample", "score", "-i", str(path), "-o", str(tmp_path / "o"),
                                    "--lm-dir", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and f"{tmp_path / 'nowhere' / 'es.arpa.bin'} not found" in res.output
    b = estimate_boundaries(path, scorer=ccnet_scorer, n_docs=20, progress=False)
    with pytest.raises(ValueError, match="another LM or scoring mode"):
        sample(path, tmp_path / "s", strategy="gaussian", boundaries=b, scorer=lines_scorer)
    res = CliRunner().invoke(main, ["sample", "run", "-i", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "s2"),
                                    "--lm-dir", str(kenlm_dir)])
    assert res.exit_code == 1 and "missing.jsonl does not exist" in res.output


@pytest.fixture(scope="module")
def truncated_gz(web_sample, tmp_path_factory):
    """The first 400 real records, gzipped and cut in the middle; returns (path, complete lines)."""
    raw = gzip.compress(b"".join(read_lines(web_sample, 400)))
    path = tmp_path_factory.mktemp("cut") / "cut.jsonl.gz"
    path.write_bytes(raw[: len(raw) // 2])
    complete = 0
    with pytest.raises(EOFError), gzip.open(path, "rb") as f:
        for _ in f:
            complete += 1
    return path, complete


@pytest.mark.parametrize("tasks", [1, 2])
def test_truncated_gzip_is_one_counted_skip_and_the_records_before_it_are_kept(truncated_gz, lines_scorer, tmp_path,
                                                                              tasks):
    path, complete = truncated_gz
    stats = score(path, tmp_path / "o", scorer=lines_scorer, rejects=True, tasks=tasks)
    assert stats["skipped"] == {"truncated_gzip": 1}  # counted once, whatever the number of tasks
    assert stats["seen"] == complete and len(read_shards(tmp_path / "o")) == complete
    (reject,) = read_shards(tmp_path / "o", "rejects")
    assert reject["where"] == f"{path}:{complete + 1}" and "lost" in reject["detail"]


def test_truncated_gzip_under_strict_names_file_and_line_and_leaves_no_partial(truncated_gz, lines_scorer, tmp_path):
    path, complete = truncated_gz
    with pytest.raises(SampleError, match=rf"{path}:{complete + 1}: truncated_gzip"):
        score(path, tmp_path / "o", scorer=lines_scorer, strict=True)
    assert not list((tmp_path / "o").rglob("*.partial"))
    b = estimate_boundaries(path, scorer=lines_scorer, n_docs=10_000, progress=False)  # the CLI: tests/faults
    assert b.n == complete and b.skipped == {"truncated_gzip": 1}


def test_corrupt_gzip_is_an_error_naming_file_and_line(web_sample, lines_scorer, kenlm_dir, tmp_path):
    raw = bytearray(gzip.compress(b"".join(read_lines(web_sample, 400))))
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)  # damaged in the middle: the CRC check fails at the end
    path = tmp_path / "damaged.jsonl.gz"
    path.write_bytes(bytes(raw))
    res = CliRunner().invoke(main, ["sample", "score", "-i", str(path), "-o", str(tmp_path / "o"),
                                    "--lm-dir", str(kenlm_dir)])
    assert res.exit_code == 1
    assert f"{path}:" in res.output and "cannot decode the file" in res.output and "Traceback" not in res.output
    assert not list((tmp_path / "o").rglob("*.partial"))
