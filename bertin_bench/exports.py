"""The file an exported model carries about its pre-training: written by ``pretraining`` at export,
read by ``benchmark`` (tokens seen, content identity). One name and one reader, so the two stages
agree on the format without importing each other."""

from __future__ import annotations

from pathlib import Path

from bertin_bench.io import read_json

EXPORT_INFO = "bertin_pretraining.json"


def export_info_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / EXPORT_INFO


def read_export_info(model_dir: str | Path) -> dict | None:
    """The export info of a model directory, or None when it is not one of our exports."""
    path = export_info_path(model_dir)
    return read_json(path) if path.is_file() else None
