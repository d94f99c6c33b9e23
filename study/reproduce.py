"""Did this run reproduce the published study? Its fine-tuning scores against the committed ones."""

from __future__ import annotations

from pathlib import Path


def _scores(results_dir: Path) -> dict[tuple[str, str, int], float]:
    from benchmark.results import iter_results

    if not results_dir.is_dir():
        return {}
    return {(res.model.name, res.task.name, res.seed): res.main_score for _, res in iter_results(results_dir)}


def compare_with_published(results_dir: Path, published_dir: Path, tolerance: float = 0.0) -> list[str]:
    """Lines for the user: "reproduced: identical scores" or each difference. ``tolerance``: the
    largest absolute difference still called identical (0: bit-equal scores)."""
    if results_dir.resolve() == published_dir.resolve():
        return []
    ours, published = _scores(results_dir), _scores(published_dir)
    if not published:
        return [f"no published results in {published_dir} to compare with"]
    common = sorted(set(ours) & set(published))
    diffs = [(k, ours[k], published[k]) for k in common if abs(ours[k] - published[k]) > tolerance]
    lines = []
    only_ours, only_pub = sorted(set(ours) - set(published)), sorted(set(published) - set(ours))
    if not diffs and common:
        lines.append(f"reproduced: identical scores on all {len(common)} runs also in {published_dir}")
    for (model, task, seed), a, b in diffs:
        lines.append(f"differs: {model} {task} seed {seed}: {100 * a:.2f} here vs {100 * b:.2f} published "
                     f"({100 * (a - b):+.2f})")
    if only_ours:
        lines.append(f"{len(only_ours)} runs here have no published counterpart (e.g. {' '.join(map(str, only_ours[0]))})")
    if only_pub:
        lines.append(f"{len(only_pub)} published runs were not run here (e.g. {' '.join(map(str, only_pub[0]))})")
    return lines
