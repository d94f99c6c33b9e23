"""Checkpoint discovery ignores half-written directories (atomic writes make them harmless)."""

import pytest

from pretraining.checkpoint import export_hf, latest_checkpoint, list_checkpoints


def test_latest_ignores_incomplete_and_temporary_dirs(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    for name, files in [("step_00000004", ["metadata.json", "state.msgpack"]),
                        ("step_00000010", ["metadata.json", "state.msgpack"]),
                        ("step_00000012", ["state.msgpack"]),  # killed before metadata was written
                        (".step_00000016.tmp-123", ["metadata.json", "state.msgpack"]),  # never renamed
                        ("notes", ["metadata.json", "state.msgpack"])]:
        (root / name).mkdir(parents=True)
        for f in files:
            (root / name / f).write_text("{}")
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [4, 10]
    assert latest_checkpoint(tmp_path / "run") == root / "step_00000010"
    assert latest_checkpoint(root) == root / "step_00000010"
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_export_of_a_non_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        export_hf(tmp_path, tmp_path / "out")
