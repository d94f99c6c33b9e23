"""Provenance: the fast version reader agrees with importlib.metadata."""

from __future__ import annotations

import importlib.metadata

from bertin_bench.provenance import TRACKED_PACKAGES, package_versions


def test_package_versions_match_importlib_metadata():
    names = (*TRACKED_PACKAGES, "orjson", "click", "no-such-package-bertin")
    expected = {}
    for name in names:
        try:
            expected[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            expected[name] = None
    assert package_versions(names) == expected
    assert expected["numpy"] and expected["no-such-package-bertin"] is None
