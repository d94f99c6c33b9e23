"""Import datatrove without paying for huggingface_hub's HTTP stack when nothing touches the Hub.

``datatrove.io``, which every datatrove executor, reader and writer imports, starts with
``from huggingface_hub import HfFileSystem, cached_assets_path``. Resolving those two names imports
``huggingface_hub.hf_api``, ``requests`` and ``urllib3``: about 0.2 s of the 0.65 s that every
``bench sample`` command took to start, although a local run never opens a Hub file. Start-up is a
fixed cost that a parallel run cannot divide, so it was what kept 2 tasks from being ~2x faster than 1
on a 20k-document input.

``datatrove.io`` uses the two names in exactly two places (datatrove 0.9.x): ``isinstance(fs,
HfFileSystem)`` in ``DataFolder.list_files``, and a call to ``cached_assets_path`` when it downloads
an asset. So while ``datatrove.io`` is being imported, it is handed two stand-ins that resolve lazily:

- ``HfFileSystem``: a class whose ``isinstance``/``issubclass`` checks defer to the real class once
  ``huggingface_hub.hf_file_system`` has been imported -- and answer False before that, which is
  exact: no object can be an instance of a class that was never defined. Instantiating it builds the
  real file system.
- ``cached_assets_path``: a function that imports the real one on its first call.

huggingface_hub's own attributes are put back right after, so every other importer (``datasets``,
``transformers``, the Hub reader) gets the real objects. Reading ``hf://`` input goes through
``datasets``, which imports the real stack when it is needed.
"""

from __future__ import annotations

import importlib
import sys

_HF_FS_MODULE = "huggingface_hub.hf_file_system"


class _DeferredClassCheck(type):
    def __instancecheck__(cls, obj) -> bool:
        module = sys.modules.get(_HF_FS_MODULE)
        return module is not None and isinstance(obj, module.HfFileSystem)

    def __subclasscheck__(cls, sub) -> bool:
        module = sys.modules.get(_HF_FS_MODULE)
        return module is not None and issubclass(sub, module.HfFileSystem)


class HfFileSystem(metaclass=_DeferredClassCheck):
    """Stand-in for ``huggingface_hub.HfFileSystem`` inside ``datatrove.io`` (see module doc)."""

    def __new__(cls, *args, **kwargs):
        from huggingface_hub import HfFileSystem as real

        return real(*args, **kwargs)


def cached_assets_path(*args, **kwargs):
    """Stand-in for ``huggingface_hub.cached_assets_path`` inside ``datatrove.io``."""
    from huggingface_hub import cached_assets_path as real

    return real(*args, **kwargs)


_STAND_INS = {"HfFileSystem": HfFileSystem, "cached_assets_path": cached_assets_path}


def import_datatrove_io() -> None:
    """Import ``datatrove.io`` with the lazy stand-ins; a no-op when it is already imported, and a
    plain import when huggingface_hub's file system is already loaded (nothing to save then)."""
    if "datatrove.io" in sys.modules:
        return
    if _HF_FS_MODULE in sys.modules:
        importlib.import_module("datatrove.io")
        return
    import huggingface_hub

    namespace = vars(huggingface_hub)
    saved = {name: namespace[name] for name in _STAND_INS if name in namespace}
    namespace.update(_STAND_INS)
    try:
        importlib.import_module("datatrove.io")
    finally:
        for name in _STAND_INS:
            if name in saved:
                namespace[name] = saved[name]
            else:  # huggingface_hub resolves it lazily again (its module __getattr__)
                del namespace[name]
