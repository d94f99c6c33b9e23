"""Ray executor on a local Ray instance: 1 vs 2 tasks keep the same documents as the local executor."""

from __future__ import annotations

import pytest

from tests.sampling.util import read_shards, sample

ray = pytest.importorskip("ray", reason="the `ray` extra is not installed")


@pytest.fixture(scope="module")
def local_ray():
    # 127.0.0.1: Ray otherwise probes an outside address to find the node IP (tests stay offline).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def test_ray_one_vs_two_tasks_same_kept_set(local_ray, web_slice, ccnet_scorer, tmp_path):
    common = dict(strategy="random", factor=0.4, scorer=ccnet_scorer, seed=3)
    path = web_slice(400)
    local = sample(path, tmp_path / "local", tasks=1, **common)
    one = sample(path, tmp_path / "ray1", tasks=1, workers=1, kind="ray", **common)
    two = sample(path, tmp_path / "ray2", tasks=2, workers=2, kind="ray", **common)
    texts = [sorted(r["text"] for r in read_shards(tmp_path / d)) for d in ("local", "ray1", "ray2")]
    assert texts[0] == texts[1] == texts[2] and 0 < len(texts[0]) < 400
    assert local["kept"] == one["kept"] == two["kept"] and two["tasks"] == 2
