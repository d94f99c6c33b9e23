"""benchmark stage: fine-tune encoders on Spanish tasks, keep one result file per run, build
leaderboards and comparisons from those files.

Entry points (see docs/benchmark.md):
- ``benchmark.runner.run_benchmark(model, tasks, *, seeds=3, results_dir="results", ...)``
- ``benchmark.leaderboard.build_leaderboard(results_dir="results", group="bertin")``
- ``benchmark.compare.compare_models(models, results_dir, out_dir=None, test="both")``
- result files: ``benchmark.results.FinetuneResult`` (``from_disk`` / ``to_disk``) and ``iter_results``
- registries: ``benchmark.tasks.TASKS`` / ``GROUPS``, ``benchmark.models.MODELS``
"""
