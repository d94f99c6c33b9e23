"""benchmark/RESULTS_SCHEMA.md, generated: the result-file schema (owned by ``benchmark.results``)
and the leaderboard CSV's data dictionary (owned by ``benchmark.leaderboard``). Run
``python -m benchmark.schema_doc`` after changing either; a test fails while the file is stale."""

from __future__ import annotations

from pathlib import Path

from bertin_bench.io import write_text_atomic

from benchmark import leaderboard, results

SCHEMA_DOC = Path(__file__).resolve().parent / "RESULTS_SCHEMA.md"


def schema_markdown() -> str:
    return "\n".join([*results.schema_lines(), "", *leaderboard.data_dictionary()]) + "\n"


def write_schema_doc(path: str | Path = SCHEMA_DOC) -> Path:
    return write_text_atomic(path, schema_markdown())


if __name__ == "__main__":
    print(write_schema_doc())
