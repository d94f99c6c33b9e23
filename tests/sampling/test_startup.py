"""What `bench sample` imports before any work: the start-up is a fixed cost that parallel tasks
cannot divide (perf/bench_scoring.py (c)), so the heavy modules that a local `score` does
not use must stay out, and the lazy Hub stand-ins must stay exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("requests", "urllib3", "huggingface_hub.hf_api", "huggingface_hub.hf_file_system", "numpy",
         "datatrove.pipeline.filters", "datatrove.pipeline.writers", "matplotlib", "datasets")


def test_sample_commands_start_without_heavy_imports():
    code = ("import sys, json; import bertin_bench.cli, sampling.cli, sampling.pipeline, sampling.stats, "
            "sampling.steps, sampling.executors, sampling.options, sampling.histogram, "
            "sampling.io, sampling.scorer; import datatrove.executor; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) == []


def test_modules_without_datatrove_do_not_load_it():
    # the stand-ins are installed by the modules that import datatrove, not by the package, so
    # `bench lm train` and anything that only normalizes or scores stays light
    code = ("import sys, json; import sampling.normalize, sampling.scorer, sampling.lm; "
            "print(json.dumps([m for m in ('datatrove.io', 'fsspec', 'loguru') if m in sys.modules]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) == []


def test_lazy_hub_stand_ins_are_exact(tmp_path):
    code = """
import json, sampling.io, datatrove.io, huggingface_hub
from sampling import _lazy_hub
checks = {
    "stand_in_in_datatrove": datatrove.io.HfFileSystem is _lazy_hub.HfFileSystem,
    "no_instance_before_import": not isinstance(object(), datatrove.io.HfFileSystem),
}
from huggingface_hub import HfFileSystem, cached_assets_path  # the real ones, for everyone else
import huggingface_hub.hf_file_system as real
checks["hub_restored"] = HfFileSystem is real.HfFileSystem and huggingface_hub.HfFileSystem is real.HfFileSystem
fs = HfFileSystem()
checks["isinstance_real"] = isinstance(fs, datatrove.io.HfFileSystem)
checks["issubclass_real"] = issubclass(real.HfFileSystem, datatrove.io.HfFileSystem)
checks["new_builds_real"] = type(datatrove.io.HfFileSystem()) is real.HfFileSystem
checks["assets_path"] = datatrove.io.cached_assets_path(library_name="bertin-bench-test") == cached_assets_path(library_name="bertin-bench-test")
print(json.dumps(checks))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})  # assets dir there
    checks = json.loads(res.stdout.strip().splitlines()[-1])
    assert all(checks.values()), checks
