"""One pre-training unit of a study, in its own process: ``python -m study.unit PAYLOAD``, started
by :func:`study.dispatch.pretrain_units` (a payload is a study config, the data directory, an arm
and a seed). It runs the very :meth:`study.run.Study.pretrain` a serial study runs."""

from __future__ import annotations

import json
import logging
import os
import sys

from bertin_bench import paths
from bertin_bench.units import confine


def main(payload: str) -> int:
    confine()  # before JAX is imported: its devices and threads are fixed then
    job = json.loads(payload)
    if job["data_dir"]:
        os.environ[paths.ENV_VAR] = job["data_dir"]
    from bertin_bench.config import build
    from study.config import StudyConfig
    from study.run import Study, compilation_cache

    study = Study(build(StudyConfig, job["config"]), echo=lambda line: print(line, file=sys.stderr, flush=True))
    with compilation_cache(study.layout.jax_cache):
        study.pretrain(job["arm"], job["seed"])
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.exit(main(sys.argv[1]))
